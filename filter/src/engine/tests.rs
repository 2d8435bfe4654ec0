//! Engine semantics, one case per rule of spec §4, each naming the section it checks.

use super::fixtures::*;
use super::*;
use crate::config::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn origin(rule: &str) -> Origin {
    Origin { kind: "CiliumNetworkPolicy".into(), policy: "default/p".into(), rule: rule.into() }
}
fn tcp(first: u16, last: u16) -> PortRange {
    PortRange { protocol: Protocol::Tcp, first, last }
}
fn allow(
    rule: &str,
    peers: Peers,
    ports: Option<Vec<PortRange>>,
    http: Option<Vec<HttpRule>>,
) -> Rule {
    Rule { action: Action::Allow, origin: origin(rule), peers, ports, http, server_names: None }
}
fn deny(rule: &str, peers: Peers, ports: Option<Vec<PortRange>>) -> Rule {
    Rule {
        action: Action::Deny,
        origin: origin(rule),
        peers,
        ports,
        http: None,
        server_names: None,
    }
}
fn get_inventory() -> Vec<HttpRule> {
    vec![HttpRule {
        method: Some("GET".into()),
        path: Some("/api/inventory/.*".into()),
        ..Default::default()
    }]
}
fn engine(ingress: Vec<Rule>) -> Engine {
    let config = Config {
        version: SCHEMA_VERSION,
        endpoint: EndpointRef {
            name: "inventory-api".into(),
            namespace: "default".into(),
            identity: 0,
        },
        identities: vec![],
        ipcache: vec![
            IpCacheEntry { cidr: "10.0.0.1/32".into(), identity: FRONTEND },
            IpCacheEntry { cidr: "10.0.0.2/32".into(), identity: BATCH },
        ],
        local: vec![],
        ingress: DirectionPolicy { enforced: true, rules: ingress, audit: None },
        egress: DirectionPolicy { enforced: false, rules: vec![], audit: None },
    };
    Engine::compile(&config).unwrap()
}
fn ingress(peer: Identity, port: u16) -> Request<'static> {
    Request {
        direction: Direction::Ingress,
        peer,
        port,
        protocol: Protocol::Tcp,
        server_name: None,
        sni: None,
    }
}
fn verdict(e: &Engine, peer: Identity, port: u16, req: &Req) -> (bool, String) {
    let v = e.decide(&ingress(peer, port), Some(req));
    (v.allowed, format!("{}@{}", v.reason.code(), v.origin.map(|o| o.rule.as_str()).unwrap_or("-")))
}

/// The seed: frontend may GET /api/inventory/.* on 8080 and nothing else (spec §4.4, §5.2).
#[test]
fn seed_inventory_rule() {
    let e = engine(vec![allow(
        "spec.ingress[0]",
        Peers::Identities(vec![FRONTEND]),
        Some(vec![tcp(8080, 8080)]),
        Some(get_inventory()),
    )]);
    assert_eq!(
        verdict(&e, FRONTEND, 8080, &http("GET", "/api/inventory/item123")),
        (true, "allowed-l7@spec.ingress[0]".into())
    );
    assert_eq!(
        verdict(&e, FRONTEND, 8080, &http("DELETE", "/api/inventory/item123")),
        (false, "denied-l7-no-rule-matched@spec.ingress[0]".into())
    );
    assert!(!verdict(&e, FRONTEND, 8080, &http("GET", "/api/other")).0);
    assert_eq!(
        verdict(&e, BATCH, 8080, &http("GET", "/api/inventory/item123")),
        (false, "default-deny@-".into())
    );
    assert!(!verdict(&e, WORLD, 8080, &http("GET", "/api/inventory/item123")).0);
    assert_eq!(
        verdict(&e, FRONTEND, 9090, &http("GET", "/api/inventory/item123")),
        (false, "default-deny@-".into())
    );
}

/// A path the application could resolve outside the rule's prefix (engine::pathform) is denied
/// at L7 even though the rule's regex matches it; an L3/L4 allow does not look at paths.
#[test]
fn ambiguous_paths_are_denied_at_l7_only() {
    let e = engine(vec![
        allow(
            "spec.ingress[0]",
            Peers::Identities(vec![FRONTEND]),
            Some(vec![tcp(8080, 8080)]),
            Some(get_inventory()),
        ),
        allow("spec.ingress[1]", Peers::Identities(vec![BATCH]), Some(vec![tcp(8080, 8080)]), None),
    ]);
    for path in ["/api/inventory/..;/admin", "/api/inventory/%2e%2e%3b/admin"] {
        assert_eq!(
            verdict(&e, FRONTEND, 8080, &http("GET", path)),
            (false, "denied-ambiguous-path@spec.ingress[0]".into()),
            "{path}"
        );
        assert_eq!(
            verdict(&e, BATCH, 8080, &http("GET", path)),
            (true, "allowed-l3-l4@spec.ingress[1]".into()),
            "{path}"
        );
    }
    assert_eq!(
        verdict(&e, FRONTEND, 8080, &http("GET", "/api/inventory/item;v=1")),
        (true, "allowed-l7@spec.ingress[0]".into())
    );
}

/// spec §4.1 case 1: a direction no policy speaks about allows everything.
#[test]
fn unenforced_direction_allows() {
    let e = engine(vec![]);
    let v = e.decide(&Request { direction: Direction::Egress, ..ingress(WORLD, 1) }, None);
    assert!(v.allowed);
    assert_eq!(v.reason, Reason::NotEnforced);
}

/// spec §4.1: an enforced direction with no allow rule denies everything (`ingress: [{}]`).
#[test]
fn enforced_without_rules_denies() {
    let e = engine(vec![]);
    assert_eq!(verdict(&e, FRONTEND, 80, &http("GET", "/")), (false, "default-deny@-".into()));
}

/// spec §4.2: deny wins over allow, whatever the specificity — L3 deny beats an L7 allow, and a
/// port deny (all peers) beats an L3-only allow.
#[test]
fn deny_wins() {
    let e = engine(vec![
        allow(
            "spec.ingress[0]",
            Peers::Identities(vec![FRONTEND, BATCH]),
            Some(vec![tcp(8080, 8080)]),
            Some(get_inventory()),
        ),
        allow("spec.ingress[1]", Peers::Identities(vec![BATCH]), None, None),
        deny("spec.ingressDeny[0]", Peers::Identities(vec![FRONTEND]), None),
        deny("spec.ingressDeny[1]", Peers::Any, Some(vec![tcp(9000, 9000)])),
    ]);
    assert_eq!(
        verdict(&e, FRONTEND, 8080, &http("GET", "/api/inventory/a")),
        (false, "denied-by-deny-rule@spec.ingressDeny[0]".into())
    );
    assert_eq!(
        verdict(&e, BATCH, 9000, &http("GET", "/")),
        (false, "denied-by-deny-rule@spec.ingressDeny[1]".into())
    );
    assert_eq!(
        verdict(&e, BATCH, 8080, &http("PUT", "/x")),
        (true, "allowed-l3-l4@spec.ingress[1]".into())
    );
}

/// spec §4.3 items 2-4: an L4-only or L3-only allow for a selector containing the peer voids the
/// HTTP restrictions for that peer; item 5: it does not help peers it does not select.
#[test]
fn l4_allow_voids_l7_only_for_its_peers() {
    let e = engine(vec![
        allow(
            "spec.ingress[0]",
            Peers::Identities(vec![FRONTEND]),
            Some(vec![tcp(8080, 8080)]),
            Some(get_inventory()),
        ),
        allow("spec.ingress[1]", Peers::Identities(vec![WORLD]), Some(vec![tcp(8080, 8080)]), None),
    ]);
    assert_eq!(
        verdict(&e, WORLD, 8080, &http("DELETE", "/anything")),
        (true, "allowed-l3-l4@spec.ingress[1]".into())
    );
    assert!(!verdict(&e, FRONTEND, 8080, &http("DELETE", "/anything")).0);
    let broad = engine(vec![
        allow(
            "spec.ingress[0]",
            Peers::Identities(vec![FRONTEND]),
            Some(vec![tcp(8080, 8080)]),
            Some(get_inventory()),
        ),
        allow("spec.ingress[1]", Peers::Identities(vec![FRONTEND]), None, None),
    ]);
    assert_eq!(
        verdict(&broad, FRONTEND, 8080, &http("DELETE", "/x")),
        (true, "allowed-l3-l4@spec.ingress[1]".into())
    );
}

/// spec §4.3 item 1: HTTP rule lists of several rules for the same peer and port are ORed.
#[test]
fn http_lists_union() {
    let post = vec![HttpRule {
        method: Some("POST".into()),
        path: Some("/b".into()),
        ..Default::default()
    }];
    let e = engine(vec![
        allow(
            "spec.ingress[0]",
            Peers::Identities(vec![FRONTEND]),
            Some(vec![tcp(8080, 8080)]),
            Some(get_inventory()),
        ),
        allow("specs[1].ingress[0]", Peers::Any, Some(vec![tcp(8000, 8100)]), Some(post)),
    ]);
    assert_eq!(
        verdict(&e, FRONTEND, 8080, &http("POST", "/b")),
        (true, "allowed-l7@specs[1].ingress[0]".into())
    );
    assert!(verdict(&e, FRONTEND, 8080, &http("GET", "/api/inventory/1")).0);
    assert!(!verdict(&e, BATCH, 8080, &http("GET", "/api/inventory/1")).0);
    assert!(verdict(&e, BATCH, 8100, &http("POST", "/b")).0, "range end is inclusive");
    assert!(!verdict(&e, BATCH, 8101, &http("POST", "/b")).0);
}

/// spec §3.8: port ranges are inclusive and protocols are separate.
#[test]
fn ranges_and_protocols() {
    let e = engine(vec![allow(
        "spec.ingress[0]",
        Peers::Any,
        Some(vec![tcp(1000, 2000), PortRange { protocol: Protocol::Udp, first: 53, last: 53 }]),
        None,
    )]);
    assert!(e.decide(&ingress(BATCH, 1000), None).allowed);
    assert!(e.decide(&ingress(BATCH, 2000), None).allowed);
    assert!(!e.decide(&ingress(BATCH, 2001), None).allowed);
    assert!(!e.decide(&ingress(BATCH, 53), None).allowed, "53 is allowed for UDP only");
    assert!(e.decide(&Request { protocol: Protocol::Udp, ..ingress(BATCH, 53) }, None).allowed);
    assert!(!e.decide(&ingress(BATCH, 65535), None).allowed);
}

/// spec §6.4: toFQDNs rules match the requested name, not an identity.
#[test]
fn fqdn_rules_match_names() {
    let mut config = Config {
        version: SCHEMA_VERSION,
        endpoint: EndpointRef { name: "frontend".into(), namespace: "default".into(), identity: 0 },
        identities: vec![],
        ipcache: vec![],
        local: vec![],
        ingress: DirectionPolicy { enforced: false, rules: vec![], audit: None },
        egress: DirectionPolicy { enforced: true, rules: vec![], audit: None },
    };
    config.egress.rules.push(allow(
        "spec.egress[0]",
        Peers::Fqdns(vec![FqdnSelector::MatchPattern("*.example.com".into())]),
        Some(vec![tcp(443, 443)]),
        None,
    ));
    let e = Engine::compile(&config).unwrap();
    let req = |name: &'static str, port| Request {
        direction: Direction::Egress,
        peer: WORLD,
        port,
        protocol: Protocol::Tcp,
        server_name: Some(name),
        sni: None,
    };
    assert!(e.decide(&req("api.example.com.", 443), None).allowed);
    assert!(!e.decide(&req("example.com.", 443), None).allowed);
    assert!(!e.decide(&req("api.example.com.", 8443), None).allowed);
    assert!(
        !e.decide(&Request { server_name: None, ..req("x", 443) }, None).allowed,
        "no name → no FQDN allow"
    );
}

/// spec §3.8, §4.4 step 4: a rule with serverNames counts only for a TLS connection whose SNI
/// matches a name (case-insensitive), `*.` one label more or `**.` one or more, never the apex;
/// another rule for the peer without serverNames still allows (different selectors, §4.3).
#[test]
fn server_names_gate_a_rule_on_the_sni() {
    let mut sni_rule = allow(
        "spec.ingress[0].toPorts[0]",
        Peers::Identities(vec![FRONTEND]),
        Some(vec![tcp(443, 443)]),
        None,
    );
    sni_rule.server_names =
        Some(vec!["Api.Example.com".into(), "*.one.org".into(), "**.many.org".into()]);
    let e = engine(vec![sni_rule.clone()]);
    let decide = |sni: Option<&str>| {
        let v = e.decide(&Request { sni, ..ingress(FRONTEND, 443) }, None);
        (v.allowed, v.reason.code())
    };
    for sni in ["api.example.com.", "a.one.org.", "a.many.org.", "a.b.many.org."] {
        assert_eq!(decide(Some(sni)), (true, "allowed-l3-l4"), "{sni}");
    }
    for sni in [
        None,
        Some("other.example.com."),
        Some("a.b.one.org."),
        Some("one.org."),
        Some("many.org."),
    ] {
        assert_eq!(decide(sni), (false, "denied-server-name"), "{sni:?}");
    }
    let other = allow(
        "spec.ingress[1]",
        Peers::Identities(vec![FRONTEND]),
        Some(vec![tcp(443, 443)]),
        None,
    );
    let e = engine(vec![sni_rule, other]);
    let v = e.decide(&ingress(FRONTEND, 443), None);
    assert_eq!((v.allowed, v.origin.map(|o| o.rule.as_str())), (true, Some("spec.ingress[1]")));
}

/// spec §5.5: a condition with `mismatch` never fails its element; when the header is missing
/// or different the allowed request carries the action (LOG records, ADD adds, DELETE removes
/// a present mismatching header, REPLACE sets), for every element whose other fields match; an
/// element whose other fields fail acts on nothing.
#[test]
fn mismatch_actions_ride_on_allowed_requests() {
    let cond = |name: &str, value: Option<&str>, m: Mismatch| HeaderCondition {
        name: name.into(),
        value: value.map(Into::into),
        mismatch: Some(m),
    };
    let get = HttpRule {
        method: Some("GET".into()),
        headers: vec![
            cond("X-Source", Some("frontend"), Mismatch::Add),
            cond("x-debug", Some("off"), Mismatch::Delete),
            cond("x-tenant", Some("blue"), Mismatch::Replace),
            cond("x-trace", None, Mismatch::Log),
        ],
        ..Default::default()
    };
    let post = HttpRule {
        method: Some("POST".into()),
        headers: vec![cond("x-post", Some("1"), Mismatch::Add)],
        ..Default::default()
    };
    let e = engine(vec![allow(
        "spec.ingress[0].toPorts[0]",
        Peers::Identities(vec![FRONTEND]),
        Some(vec![tcp(8080, 8080)]),
        Some(vec![get, post]),
    )]);
    let actions = |method: &'static str, extra: &[(&'static str, &'static str)]| {
        let mut req = http(method, "/");
        req.0.extend(extra.iter().copied());
        let v = e.decide(&ingress(FRONTEND, 8080), Some(&req));
        let list: Vec<String> = v
            .rewrites
            .iter()
            .map(|r| format!("{} {} {}", r.action.name(), r.name, String::from_utf8_lossy(r.value)))
            .collect();
        (v.allowed, list)
    };
    assert_eq!(
        actions("GET", &[("x-debug", "on"), ("x-tenant", "red")]),
        (
            true,
            vec![
                "ADD x-source frontend".into(),
                "DELETE x-debug off".into(),
                "REPLACE x-tenant blue".into(),
                "LOG x-trace ".into()
            ]
        )
    );
    assert_eq!(
        actions("GET", &[("x-source", "frontend"), ("x-tenant", "blue"), ("x-trace", "1")]),
        (true, vec![]),
        "satisfied conditions do nothing, and a missing header is not deleted"
    );
    assert_eq!(actions("DELETE", &[]), (false, vec![]), "a mismatch never rescues a request");
    assert_eq!(actions("POST", &[]), (true, vec!["ADD x-post 1".into()]));
}

/// Fail closed: without a configuration every request is denied, with the reason.
#[test]
fn unconfigured_denies() {
    let e = Engine::unconfigured("no plugin configuration");
    let v = e.decide(&ingress(FRONTEND, 8080), Some(&http("GET", "/")));
    assert!(!v.allowed);
    assert_eq!(v.reason.code(), "no-configuration");
}

/// Broken configs are refused at compile time, not per request.
#[test]
fn bad_configs_are_refused() {
    let bad_regex = vec![HttpRule { path: Some("(".into()), ..Default::default() }];
    let config = |rules| Config {
        version: SCHEMA_VERSION,
        endpoint: EndpointRef { name: "x".into(), namespace: "default".into(), identity: 0 },
        identities: vec![],
        ipcache: vec![],
        local: vec![],
        ingress: DirectionPolicy { enforced: true, rules, audit: None },
        egress: DirectionPolicy { enforced: false, rules: vec![], audit: None },
    };
    let e =
        Engine::compile(&config(vec![allow("spec.ingress[0]", Peers::Any, None, Some(bad_regex))]))
            .unwrap_err();
    assert!(e.contains("spec.ingress[0]") && e.contains("invalid regex"), "{e}");
    assert!(Engine::compile(&config(vec![allow("r", Peers::Any, Some(vec![tcp(9, 8)]), None)]))
        .is_err());
    assert!(Config::from_json(br#"{"version": 999}"#).is_err());
    assert!(Config::from_json(b"not json").is_err());
}

// spec §6.1: a name never selects a local or in-cluster address. The endpoint's own local
// addresses are refused as egress destinations (IP literals) and as DNS answers, except where
// the inventory declares a range outside; pods and nodes are never outside, CIDR identities and
// the world are. Only the endpoint itself may use its egress listeners.
#[test]
fn local_and_in_cluster_destinations_and_callers() {
    let entry = |cidr: &str, identity| IpCacheEntry { cidr: cidr.into(), identity };
    let config = Config {
        version: SCHEMA_VERSION,
        endpoint: EndpointRef {
            name: "frontend".into(),
            namespace: "default".into(),
            identity: FRONTEND,
        },
        identities: vec![],
        ipcache: vec![
            entry("10.0.0.1/32", FRONTEND),
            entry("10.0.0.2/32", BATCH),
            entry("10.0.1.1/32", HOST),
            entry("127.0.0.9/32", BATCH),
            entry("192.0.2.0/24", FIRST_CIDR_IDENTITY),
            entry("127.0.0.0/8", FIRST_CIDR_IDENTITY + 1),
        ],
        local: vec![
            entry("127.0.0.0/8", HOST),
            entry("127.0.5.0/24", WORLD),
            entry("0.0.0.0/8", HOST),
            entry("169.254.0.0/16", HOST),
            entry("::1/128", HOST),
        ],
        ingress: DirectionPolicy { enforced: false, rules: vec![], audit: None },
        egress: DirectionPolicy { enforced: false, rules: vec![], audit: None },
    };
    let e = Engine::compile(&config).unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    for (addr, local, outside) in [
        ("10.0.0.2", false, false),
        ("10.0.1.1", false, false),
        ("127.0.0.9", true, false),
        ("127.0.0.1", true, false),
        ("0.0.0.0", true, false),
        ("169.254.169.254", true, false),
        ("::1", true, false),
        ("::ffff:127.0.0.1", true, false),
        ("127.0.5.7", false, true),
        ("192.0.2.7", false, true),
        ("198.51.100.1", false, true),
    ] {
        assert_eq!(e.is_local(ip(addr)), local, "{addr} local");
        assert_eq!(e.is_outside_address(ip(addr)), outside, "{addr} outside");
        let refused = e.refuse_local(ip(addr)).map(|v| (v.allowed, v.reason.code()));
        assert_eq!(refused, local.then_some((false, "denied-local-destination")), "{addr}");
    }
    for (caller, served) in [
        ("10.0.0.1", true),
        ("127.0.0.1", true),
        ("::1", true),
        ("10.0.0.2", false),
        ("127.0.0.9", false),
        ("10.0.1.1", false),
        ("127.0.5.7", false),
        ("198.51.100.1", false),
    ] {
        assert_eq!(e.serves_caller(ip(caller)), served, "caller {caller}");
    }
    let unconfigured = Engine::unconfigured("test");
    assert!(!unconfigured.is_outside_address(ip("198.51.100.1")));
    assert!(!unconfigured.serves_caller(ip("127.0.0.1")));
    let mut conflicting = config.clone();
    conflicting.local.push(entry("127.0.0.0/8", WORLD));
    assert!(Engine::compile(&conflicting).unwrap_err().contains("local"));
}

/// Header rules are indexed (finding 5 of issue 13): hundreds of rules on one path, told apart
/// by a header value, still give the first matching rule in configuration order, whether it is
/// filed under its exact value, under presence only, or not at all; and each header is read from
/// the host once per request, however many rules ask for it.
#[test]
fn header_rules_are_indexed_and_keep_configuration_order() {
    use std::cell::Cell;
    let header = |name: &str, value: Option<&str>| HeaderCondition {
        name: name.into(),
        value: value.map(Into::into),
        mismatch: None,
    };
    let element = |path: &str, headers: Vec<HeaderCondition>| HttpRule {
        path: Some(path.into()),
        headers,
        ..Default::default()
    };
    let on_port = |name: String, http: Vec<HttpRule>| {
        allow(&name, Peers::Identities(vec![FRONTEND]), Some(vec![tcp(8080, 8080)]), Some(http))
    };
    let mut rules: Vec<Rule> = (0..200)
        .map(|i| {
            let tenant = format!("t{i}");
            on_port(
                format!("r{i}"),
                vec![element("/api/x", vec![header("X-Tenant", Some(&tenant))])],
            )
        })
        .collect();
    rules.push(on_port("token".into(), vec![element("/api/x", vec![header("x-token", None)])]));
    rules.push(on_port(
        "token-t7".into(),
        vec![element("/api/x", vec![header("x-token", None), header("x-tenant", Some("t7"))])],
    ));
    rules.push(on_port("any".into(), vec![element("/api/.*", vec![])]));
    let e = engine(rules);

    struct Counting(Req, Cell<usize>);
    impl Headers for Counting {
        fn get(&self, name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
            if !name.starts_with(':') {
                self.1.set(self.1.get() + 1);
            }
            self.0.get(name)
        }
    }
    let request = |path: &'static str, extra: &[(&'static str, &'static str)]| {
        let mut req = http("GET", path);
        req.0.extend(extra.iter().copied());
        Counting(req, Cell::new(0))
    };
    for (path, extra, want) in [
        ("/api/x", &[("x-tenant", "t150")][..], "allowed-l7@r150"),
        ("/api/x", &[("x-tenant", "t7"), ("x-token", "k")][..], "allowed-l7@r7"),
        ("/api/x", &[("x-token", "k")][..], "allowed-l7@token"),
        ("/api/x", &[("x-tenant", "T150")][..], "allowed-l7@any"),
        ("/api/x", &[][..], "allowed-l7@any"),
        ("/api/y", &[("x-tenant", "t1")][..], "allowed-l7@any"),
    ] {
        let req = request(path, extra);
        let v = e.decide(&ingress(FRONTEND, 8080), Some(&req));
        let got =
            format!("{}@{}", v.reason.code(), v.origin.map(|o| o.rule.as_str()).unwrap_or("-"));
        assert_eq!((v.allowed, got.as_str()), (true, want), "{path} {extra:?}");
        assert!(req.1.get() <= 2, "{path} {extra:?}: {} header reads for 2 names", req.1.get());
    }
}
