//! Differential test (native only): random configurations and requests, the indexed engine against
//! the reference evaluator. Optimisation must never change a verdict, its reason, or the rule
//! (and HTTP element) it is attributed to.
//!
//! The pools are small on purpose, so random rules collide on ports, peers and path literals,
//! and one (port, peer) pair often has enough HTTP elements for the path index to be used.

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::sample::select;

use super::reference;
use super::*;
use crate::config::*;

const IDENTITIES: &[Identity] = &[HOST, WORLD, 300, 301, 302];
const PORTS: &[u16] = &[0, 79, 80, 443, 8080, 8081, 9000, 65535];
const METHODS: &[&str] =
    &["", "GET", "GET|HEAD", "POST", "(?i)get", "P.*", "GET|", "DELETE|PUT|POST"];
const PATHS: &[&str] = &[
    "",
    "/api/.*",
    "/api/v1/.*",
    "/api/v1",
    "/api/v1/items/[0-9]+",
    "/api/v1\\.0/.*",
    "/api/v1.0/.*",
    "/a|/b.*",
    "/ab*",
    "/healthz",
    "/healthz|/readyz",
    ".*",
    "/x(a|b)/.*",
    "/caf\u{e9}/.*",
    "/api/v\\d/.*",
    "/api/v1/items/.*\\?id=[0-9]+",
];
/// Pieces of generated path patterns ([`composed_path`]): RE2 class syntax that a scanner can
/// misread (`]` first in a class, POSIX classes, escapes, brackets and parentheses inside
/// classes), quantifiers, groups and alternations around a literal head.
const PATH_HEADS: &[&str] = &["/ab", "/api/v1", "/c", ""];
const PATH_CLASSES: &[&str] = &[
    "[](]",
    "[]a]",
    "[^]x]",
    "[[:alpha:]]",
    "[[:digit:](]",
    "[\\](]",
    "[a-c|]",
    "[(]",
    "[)|]",
    "\\[",
    "\\(",
    "(x|y)",
    "",
];
const PATH_TAILS: &[&str] = &["", "*", "+", ".*", "/.*", "[0-9]+", "?"];
const PATH_ALTS: &[&str] = &["", "|/c", "|/ab.*", "|[](]|/d", "|(/e)"];

/// A path pattern made of [`PATH_HEADS`], [`PATH_CLASSES`], [`PATH_TAILS`], [`PATH_ALTS`]
/// (only those the regex engine accepts).
fn composed_path() -> impl Strategy<Value = String> {
    (select(PATH_HEADS), select(PATH_CLASSES), select(PATH_TAILS), select(PATH_ALTS))
        .prop_map(|(h, c, t, a)| format!("{h}{c}{t}{a}"))
        .prop_filter("the regex engine accepts it", |p| full_match_regex(p).is_ok())
}

const HOSTS: &[&str] = &["", "inventory(:8080)?", ".*\\.example\\.com", "inventory:8080"];
const HEADER_NAMES: &[&str] = &["x-token", "X-Tenant"];
const HEADER_VALUES: &[&str] = &["blue", "red"];
/// Server names, also `matchName`s; with [`NAME_PATTERNS`] they reach every shape of the name index.
/// `serverNames` patterns (spec §3.8): a name, one label more, one or more labels more.
const SERVER_NAMES: &[&str] = &["api.example.com", "*.example.com", "**.example.com", "Other.Org"];
const NAMES: &[&str] = &[
    "api.example.com.",
    "example.com.",
    "a.b.example.com.",
    "other.org.",
    "api-v2.example.com.",
    ".example.com.",
    "myexample.com.",
    "x!.example.com.",
];
const NAME_PATTERNS: &[&str] = &[
    "*.example.com",
    "**.example.com",
    "*",
    "api-*.example.com",
    "*example.com",
    "*.*.example.com",
    "example.com",
    "***.b.example.com",
];

const REQ_METHODS: &[&str] = &["GET", "HEAD", "POST", "get", "DELETE", "PUT"];
const REQ_PATHS: &[&[u8]] = &[
    b"/",
    b"/api/v1",
    b"/api/v1/",
    b"/api/v1/items/12",
    b"/api/v1/items/12?id=7",
    b"/api/v1.0/x",
    b"/api/v1x0/x",
    b"/api/v2/x",
    b"/api/v1/x\ny",
    b"/a",
    b"/b/c",
    b"/ab",
    b"/abbb",
    b"/healthz",
    b"/readyz",
    b"/xa/1",
    b"/caf\xc3\xa9/menu",
    b"/api/v1/\xff",
    b"",
    b"/c",
    b"/d",
    b"/e",
    b"/ab(",
    b"/ab]",
    b"/abx",
    b"/ab1",
    b"/ab|",
    b"/ab[",
    b"/abq",
    b"/cx",
    b"/api/v1(",
];
const REQ_AUTHORITIES: &[&str] = &["inventory:8080", "inventory", "api.example.com", "evil.com"];

fn pattern(pool: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(0.7, select(pool).prop_map(String::from))
}

fn http_rule() -> impl Strategy<Value = HttpRule> {
    let header =
        (select(HEADER_NAMES), proptest::option::of(select(HEADER_VALUES))).prop_map(|(n, v)| {
            HeaderCondition { name: n.into(), value: v.map(Into::into), mismatch: None }
        });
    (
        pattern(METHODS),
        proptest::option::weighted(
            0.7,
            prop_oneof![2 => select(PATHS).prop_map(String::from), 1 => composed_path()],
        ),
        proptest::option::weighted(0.2, select(HOSTS).prop_map(String::from)),
        proptest::collection::vec(header, 0..4).prop_map(|mut h| {
            // Header conditions are rarer than method and path in real policies; two in one
            // element exercise the header index's choice of key (the exact-value one).
            h.truncate(h.len().saturating_sub(1));
            h
        }),
    )
        .prop_map(|(method, path, host, headers)| HttpRule { method, path, host, headers })
}

fn port_range() -> impl Strategy<Value = PortRange> {
    (
        prop_oneof![8 => Just(Protocol::Tcp), 1 => Just(Protocol::Udp), 1 => Just(Protocol::Sctp)],
        select(PORTS),
        select(&[0u16, 0, 1, 500, 65535][..]),
    )
        .prop_map(|(protocol, first, width)| PortRange {
            protocol,
            first,
            last: first.saturating_add(width),
        })
}

fn peers(fqdn: bool) -> BoxedStrategy<Peers> {
    let ids = proptest::collection::vec(select(IDENTITIES), 1..3).prop_map(Peers::Identities);
    let names = proptest::collection::vec(
        prop_oneof![
            select(NAMES).prop_map(|n| FqdnSelector::MatchName(n.into())),
            select(NAME_PATTERNS).prop_map(|p| FqdnSelector::MatchPattern(p.into())),
        ],
        1..3,
    )
    .prop_map(Peers::Fqdns);
    if fqdn {
        prop_oneof![1 => Just(Peers::Any), 3 => ids, 1 => names].boxed()
    } else {
        prop_oneof![1 => Just(Peers::Any), 3 => ids].boxed()
    }
}

fn rule(fqdn: bool) -> impl Strategy<Value = Rule> {
    let ports = proptest::option::weighted(0.85, proptest::collection::vec(port_range(), 1..3));
    let http = proptest::option::weighted(0.7, proptest::collection::vec(http_rule(), 0..6));
    let server_names = proptest::option::weighted(
        0.3,
        proptest::collection::vec(select(SERVER_NAMES).prop_map(str::to_string), 1..3),
    );
    (proptest::bool::weighted(0.15), peers(fqdn), ports, http, server_names).prop_map(
        |(deny, peers, ports, http, server_names)| {
            let origin = Origin {
                kind: "CiliumNetworkPolicy".into(),
                policy: "default/p".into(),
                rule: String::new(),
            };
            match (deny, &peers) {
                (true, Peers::Identities(_) | Peers::Any) => Rule {
                    action: Action::Deny,
                    origin,
                    peers,
                    ports,
                    http: None,
                    server_names: None,
                },
                // serverNames only on rules without HTTP rules (the validator's rule).
                _ => {
                    let server_names = server_names.filter(|_| http.is_none());
                    Rule { action: Action::Allow, origin, peers, ports, http, server_names }
                }
            }
        },
    )
}

fn view(fqdn: bool, prefix: &'static str) -> impl Strategy<Value = DirectionPolicy> {
    (proptest::bool::weighted(0.9), proptest::collection::vec(rule(fqdn), 0..30)).prop_map(
        move |(enforced, mut rules)| {
            for (i, r) in rules.iter_mut().enumerate() {
                r.origin.rule = format!("{prefix}{i}");
            }
            DirectionPolicy { enforced, rules, audit: None }
        },
    )
}

/// A direction, with an audit view (spec §8) a third of the time: the enforced rules plus more,
/// as the control plane resolves it, or (rarely) unrelated rules.
fn direction(fqdn: bool) -> impl Strategy<Value = DirectionPolicy> {
    let audit = prop_oneof![6 => Just(None), 2 => Just(Some(true)), 1 => Just(Some(false))];
    (view(fqdn, "r"), view(fqdn, "a"), audit).prop_map(|(mut enforced, mut extra, audit)| {
        if let Some(superset) = audit {
            if superset {
                extra.enforced |= enforced.enforced;
                extra.rules.splice(0..0, enforced.rules.iter().cloned());
            }
            enforced.audit = Some(Box::new(extra));
        }
        enforced
    })
}

fn config() -> impl Strategy<Value = Config> {
    (direction(false), direction(true)).prop_map(|(ingress, egress)| Config {
        version: SCHEMA_VERSION,
        endpoint: EndpointRef { name: "subject".into(), namespace: "default".into(), identity: 0 },
        identities: vec![],
        ipcache: vec![],
        local: vec![],
        ingress,
        egress,
    })
}

#[derive(Debug, Clone)]
struct Req(HashMap<String, Vec<u8>>);
impl Headers for Req {
    fn get(&self, name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        self.0.get(name).map(|v| std::borrow::Cow::Borrowed(v.as_slice()))
    }
}

#[derive(Debug, Clone)]
struct Case {
    direction: Direction,
    peer: Identity,
    port: u16,
    protocol: Protocol,
    server_name: Option<&'static str>,
    /// The TLS SNI (`None`: not TLS).
    sni: Option<&'static str>,
    /// `None`: a connection that is not HTTP.
    headers: Option<Req>,
}

fn case() -> impl Strategy<Value = Case> {
    let field = |pool: &'static [&'static [u8]]| {
        proptest::option::weighted(0.95, select(pool).prop_map(|v| v.to_vec()))
    };
    let methods: &'static [&'static [u8]] =
        Box::leak(REQ_METHODS.iter().map(|m| m.as_bytes()).collect());
    let authorities: &'static [&'static [u8]] =
        Box::leak(REQ_AUTHORITIES.iter().map(|m| m.as_bytes()).collect());
    let extra = proptest::collection::vec(
        (select(&["x-token", "x-tenant"][..]), select(&["blue", "red", "Blue"][..])),
        0..3,
    );
    let headers = (field(methods), field(REQ_PATHS), field(authorities), extra).prop_map(
        |(m, p, a, extra)| {
            let mut map = HashMap::new();
            for (k, v) in [(":method", m), (":path", p), (":authority", a)] {
                if let Some(v) = v {
                    map.insert(k.to_string(), v);
                }
            }
            for (k, v) in extra {
                map.insert(k.to_string(), v.as_bytes().to_vec());
            }
            Req(map)
        },
    );
    (
        prop_oneof![3 => Just(Direction::Ingress), 1 => Just(Direction::Egress)],
        select(&[HOST, WORLD, 300, 301, 302, 999][..]),
        prop_oneof![select(PORTS), select(&[1u16, 500, 8580, 9500][..])],
        prop_oneof![8 => Just(Protocol::Tcp), 1 => Just(Protocol::Udp), 1 => Just(Protocol::Sctp)],
        proptest::option::of(select(NAMES)),
        proptest::option::weighted(0.6, select(NAMES)),
        proptest::option::weighted(0.9, headers),
    )
        .prop_map(|(direction, peer, port, protocol, server_name, sni, headers)| Case {
            direction,
            peer,
            port,
            protocol,
            server_name,
            sni,
            headers,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// spec §4.4 and §5: the indexed engine decides exactly as the linear reference does.
    #[test]
    fn engine_agrees_with_reference(config in config(), cases in proptest::collection::vec(case(), 24)) {
        let engine = Engine::compile(&config).unwrap();
        for c in &cases {
            let req = Request { direction: c.direction, peer: c.peer, port: c.port, protocol: c.protocol, server_name: c.server_name, sni: c.sni };
            let headers = c.headers.as_ref().map(|h| h as &dyn Headers);
            let got = engine.decide(&req, headers);
            let got = (got.label(), got.reason, got.origin.map(|o| o.rule.clone()));
            prop_assert_eq!(got, reference::decide(&config, &req, headers), "{:?}", c);
        }
    }
}

/// The generators reach every verdict kind, so agreement above is not agreement on trivia.
#[test]
fn generators_cover_every_reason() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..150 {
        let config = config().new_tree(&mut runner).unwrap().current();
        for c in proptest::collection::vec(case(), 24).new_tree(&mut runner).unwrap().current() {
            let req = Request {
                direction: c.direction,
                peer: c.peer,
                port: c.port,
                protocol: c.protocol,
                server_name: c.server_name,
                sni: c.sni,
            };
            let (label, reason, _) =
                reference::decide(&config, &req, c.headers.as_ref().map(|h| h as &dyn Headers));
            seen.insert(format!("{label} {}", reason.code()));
        }
    }
    let reasons = [
        "allowed policy-not-enforced",
        "allowed allowed-l3-l4",
        "allowed allowed-l7",
        "denied denied-by-deny-rule",
        "denied default-deny",
        "denied denied-l7-no-rule-matched",
        "denied denied-server-name",
    ];
    let audits =
        ["audit denied-by-deny-rule", "audit default-deny", "audit denied-l7-no-rule-matched"];
    for code in reasons.into_iter().chain(audits) {
        assert!(seen.contains(code), "no generated case ends in {code}: {seen:?}");
    }
}
