//! Policy semantics the seed scenario does not cover, end to end: each test starts a cluster from
//! a fixture dir (`tests/fixtures/<topic>/{endpoints.yaml,policies/}`, compiled by the control
//! plane) with real Envoys running the real l7gate wasm filter, sends a table of requests and
//! checks the status AND which application was contacted (a 403 must reach no application, an
//! allowed request exactly the target). Plus the filter's fail-closed path for an empty plugin
//! configuration, on a standalone sidecar.

use std::path::PathBuf;

use l7gate_e2e::harness::client::{self, Header, Protocol, Request};
use l7gate_e2e::harness::cluster::Cluster;
use l7gate_e2e::harness::envoy::{config_without_rules, Envoy, SidecarSpec};
use l7gate_e2e::harness::tools::{repo_root, Tools};
use l7gate_e2e::harness::upstream::Upstream;
use l7gate_e2e::scenario::{self, Case, Exchange, Expect, Outcome, Peer};

const FRONTEND: Peer = Peer::Endpoint("frontend");
const REPORTING: Peer = Peer::Endpoint("reporting");
/// Not in any fixture inventory: `reserved:world` (spec §2.4).
const WORLD: Peer = Peer::Address("127.0.0.5");

const H1_H2: &[Protocol] = &[Protocol::Http1, Protocol::Http2];
/// Typed HTTP/1.1, HTTP/2 and hand-written HTTP/1.1 (header names in the case given).
const ALL: &[Protocol] = &[Protocol::Http1, Protocol::Http2, Protocol::RawHttp1];
const RAW: &[Protocol] = &[Protocol::RawHttp1];

/// One request of a table: sent once per protocol in `over`.
#[derive(Debug, Clone, Copy)]
struct Row {
    from: Peer,
    to: &'static str,
    over: &'static [Protocol],
    method: &'static str,
    path: &'static str,
    /// `:authority`; `None` = `<to>:<listener port>`.
    authority: Option<&'static str>,
    headers: &'static [Header<'static>],
    allow: bool,
    spec: &'static str,
}

/// A GET over HTTP/1.1 and HTTP/2 without extra headers; refine with the methods below.
const fn get(from: Peer, to: &'static str, path: &'static str) -> Row {
    Row {
        from,
        to,
        over: H1_H2,
        method: "GET",
        path,
        authority: None,
        headers: &[],
        allow: false,
        spec: "",
    }
}

/// A header line for a table (byte-string literals coerce here).
const fn h(name: &'static str, value: &'static [u8]) -> Header<'static> {
    (name, value)
}

impl Row {
    const fn method(self, method: &'static str) -> Row {
        Row { method, ..self }
    }
    const fn over(self, over: &'static [Protocol]) -> Row {
        Row { over, ..self }
    }
    const fn authority(self, authority: &'static str) -> Row {
        Row { authority: Some(authority), ..self }
    }
    const fn with(self, headers: &'static [Header<'static>]) -> Row {
        Row { headers, ..self }
    }
    /// 200 from `to`'s application, which saw exactly this request.
    const fn allow(self, spec: &'static str) -> Row {
        Row { allow: true, spec, ..self }
    }
    /// 403 `Access denied\r\n` from the sidecar; no application contacted.
    const fn deny(self, spec: &'static str) -> Row {
        Row { allow: false, spec, ..self }
    }

    /// The row as a seed-scenario case, so [`scenario::check`] judges it like the seed table.
    fn case(&self) -> Case {
        Case {
            from: self.from,
            to: self.to,
            over: self.over,
            method: self.method,
            path: self.path,
            expect: if self.allow {
                // No fixture path is changed by Envoy's normalisation.
                Expect::Allow { upstream_path: self.path }
            } else {
                Expect::Deny
            },
            spec: self.spec,
        }
    }

    fn describe(&self, protocol: Protocol) -> String {
        let mut out = self.case().describe(protocol);
        if let Some(authority) = self.authority {
            out.push_str(&format!(" (authority {authority})"));
        }
        for (name, value) in self.headers {
            out.push_str(&format!(" [{name}: {}]", value.escape_ascii()));
        }
        out
    }
}

fn fixture(topic: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(topic)
}

fn start(topic: &str) -> Cluster {
    Cluster::start(&fixture(topic)).unwrap_or_else(|e| panic!("fixture {topic}: {e}"))
}

/// Sends one row's request; `Outcome` as in the seed scenario.
async fn send(cluster: &Cluster, row: &Row, protocol: Protocol) -> Outcome {
    let exchange = Exchange {
        from: row.from,
        to: row.to,
        method: row.method,
        path: row.path,
        authority: row.authority,
        headers: row.headers,
    };
    exchange.run(cluster, protocol).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Runs every (row, protocol) and fails with the list of rows that differ.
async fn assert_table(cluster: &Cluster, table: &[Row]) {
    let mut failures = Vec::new();
    let mut requests = 0;
    for row in table {
        for &protocol in row.over {
            requests += 1;
            let outcome = send(cluster, row, protocol).await;
            if let Err(why) = scenario::check(&row.case(), &outcome) {
                failures.push(format!("{} [{}]\n    {why}", row.describe(protocol), row.spec));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {requests} requests differ from the table:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Header rules (spec §5.4, §5.5). Fixture `headers`: one HTTP element per path of
//    inventory-api, each with one header condition, for frontend only.

const API: &str = "inventory-api";

#[rustfmt::skip]
const HEADER_TABLE: &[Row] = &[
    // /token: headers ["X-Token"] = presence.
    get(FRONTEND, API, "/token").over(ALL).with(&[h("X-Token", b"abc")])
        .allow("spec §5.4 one token: presence, any value"),
    get(FRONTEND, API, "/token").over(RAW).with(&[h("X-TOKEN", b"abc")])
        .allow("spec §5.4 header names are case-insensitive"),
    get(FRONTEND, API, "/token").over(ALL)
        .deny("spec §5.4 presence: missing header denied"),
    get(FRONTEND, API, "/token").over(ALL).with(&[h("X-Token-Id", b"abc")])
        .deny("spec §5.4 presence is by exact name, not prefix"),
    get(REPORTING, API, "/token").over(ALL).with(&[h("X-Token", b"abc")])
        .deny("spec §4.1 header rules apply to the selected peer only"),
    // /tenant: headers ["X-Tenant: blue"] = exact value.
    get(FRONTEND, API, "/tenant").over(ALL).with(&[h("X-Tenant", b"blue")])
        .allow("spec §5.4 name: value, exact"),
    get(FRONTEND, API, "/tenant").over(RAW).with(&[h("x-TENANT", b"blue")])
        .allow("spec §5.4 header names are case-insensitive"),
    get(FRONTEND, API, "/tenant").over(ALL).with(&[h("X-Tenant", b"Blue")])
        .deny("spec §5.4 values are case-sensitive"),
    get(FRONTEND, API, "/tenant").over(ALL).with(&[h("X-Tenant", b"blueish")])
        .deny("spec §5.4 values compare exactly, not by prefix"),
    get(FRONTEND, API, "/tenant").over(ALL)
        .deny("spec §5.4 missing header denied"),
    get(FRONTEND, API, "/tenant").over(ALL).with(&[h("X-Tenant", b"blue"), h("X-Tenant", b"red")])
        .deny("spec §5.4 repeated header compared joined: \"blue,red\" != \"blue\""),
    get(FRONTEND, API, "/tenant").over(ALL).with(&[h("X-Tenant", b"red"), h("X-Tenant", b"blue")])
        .deny("spec §5.4 repeated header compared joined: \"red,blue\" != \"blue\""),
    // /tenants: headers ["X-Tenant: blue,red"].
    get(FRONTEND, API, "/tenants").over(ALL).with(&[h("X-Tenant", b"blue"), h("X-Tenant", b"red")])
        .allow("spec §5.4 repeated header joined with \",\" equals \"blue,red\""),
    get(FRONTEND, API, "/tenants").over(ALL).with(&[h("X-Tenant", b"blue,red")])
        .allow("spec §5.4 one header \"blue,red\" equals the rule value"),
    get(FRONTEND, API, "/tenants").over(ALL).with(&[h("X-Tenant", b"red"), h("X-Tenant", b"blue")])
        .deny("spec §5.4 joined in arrival order: \"red,blue\" != \"blue,red\""),
    get(FRONTEND, API, "/tenants").over(ALL).with(&[h("X-Tenant", b"blue")])
        .deny("spec §5.4 one value of two is not the joined value"),
    // /source: headerMatches [{name: X-Request-Source, value: frontend}].
    get(FRONTEND, API, "/source").over(ALL).with(&[h("X-Request-Source", b"frontend")])
        .allow("spec §5.5 headerMatches value, exact"),
    get(FRONTEND, API, "/source").over(RAW).with(&[h("x-request-SOURCE", b"frontend")])
        .allow("spec §5.5 header names are case-insensitive"),
    get(FRONTEND, API, "/source").over(ALL).with(&[h("X-Request-Source", b"Frontend")])
        .deny("spec §5.5 comparison is exact (case-sensitive)"),
    get(FRONTEND, API, "/source").over(ALL)
        .deny("spec §5.5 no mismatch action: missing header fails"),
    // /any-source: headerMatches [{name: x-request-source}] (no value).
    get(FRONTEND, API, "/any-source").over(ALL).with(&[h("X-Request-Source", b"batch")])
        .allow("spec §5.5 no value and no secret: presence check"),
    get(FRONTEND, API, "/any-source").over(ALL)
        .deny("spec §5.5 presence check: missing header fails"),
    // Non-UTF-8 values (obs-text bytes) are compared as bytes; nothing assumes UTF-8.
    get(FRONTEND, API, "/token").over(RAW).with(&[h("X-Token", b"\xff\xfe")])
        .allow("spec §5.4 presence: any value, even one that is not UTF-8"),
    get(FRONTEND, API, "/tenant").over(RAW).with(&[h("X-Tenant", b"\xff")])
        .deny("spec §5.4 a non-UTF-8 value is not \"blue\""),
    get(FRONTEND, API, "/tenant").over(RAW).with(&[h("X-Tenant", b"blue\xff")])
        .deny("spec §5.4 a non-UTF-8 value is not \"blue\""),
    // The peer is the TCP source (spec §2.4 identity by address): the connection header the
    // filter reads is Envoy's, replacing every one a client sends (envoy/sidecar.yaml).
    get(REPORTING, API, "/token").over(ALL).with(&[h("X-Token", b"abc"), h("X-L7gate-Connection", b"127.0.0.2:40000 127.0.0.10:8080")])
        .deny("spec §2.4 a client cannot claim frontend's address with the connection header"),
    get(REPORTING, API, "/token").over(RAW)
        .with(&[h("x-l7gate-connection", b"127.0.0.2:40000 127.0.0.10:8080"), h("X-Token", b"abc"), h("X-L7GATE-CONNECTION", b"127.0.0.2:40001 127.0.0.10:8080")])
        .deny("spec §2.4 nor with several connection headers"),
    get(REPORTING, API, "/token").over(ALL)
        .with(&[h("x-l7gate-connection", b"127.0.0.2:40000 127.0.0.10:8080"), h("x-l7gate-connection", b"127.0.0.2:40001 127.0.0.10:8080"), h("X-Token", b"abc")])
        .deny("spec §2.4 nor with several connection headers, over HTTP/2 too"),
    get(FRONTEND, API, "/token").over(ALL).with(&[h("X-Token", b"abc"), h("X-L7gate-Connection", b"127.0.0.3:40000 127.0.0.10:9999")])
        .allow("spec §2.4 a client's connection header is discarded, not believed"),
];

#[tokio::test]
async fn header_rules() {
    let cluster = start("headers");
    assert_table(&cluster, HEADER_TABLE).await;
}

// spec §5.5 mismatch actions, fixture `header-actions`: the application behind the sidecar sees
// the request as rewritten (ADD, DELETE, REPLACE; LOG changes nothing), the flow record names each
// action with its rule, `l7gate trace` reports the same actions, and a mismatch never rescues a
// request whose other fields fail.
#[tokio::test]
async fn mismatch_actions_rewrite_what_the_application_sees() {
    let cluster = start("header-actions");
    let sidecar = cluster.sidecar(API).expect("inventory-api sidecar");
    let from = "127.0.0.2".parse().expect("address");
    let to = sidecar.envoy.listener();
    let values = |seen: &l7gate_e2e::harness::upstream::Seen, name: &str| -> Vec<String> {
        seen.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
    };
    for protocol in H1_H2 {
        let request = Request {
            from,
            to,
            authority: "inventory-api:8080",
            method: "GET",
            path: "/api/inventory/1",
        };
        let sent: &[Header<'_>] =
            &[h("X-Debug", b"on"), h("X-Tenant", b"red"), h("X-Request-Source", b"cli")];
        let r =
            client::send_with(*protocol, &request, sent).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200, "{protocol}: a mismatch lets the request through");
        let seen = sidecar.upstream.seen().pop().expect("the application got the request");
        assert_eq!(
            values(&seen, "x-request-source"),
            ["cli", "frontend"],
            "{protocol}: ADD keeps the sent value"
        );
        assert_eq!(values(&seen, "x-debug"), Vec::<String>::new(), "{protocol}: DELETE removed it");
        assert_eq!(values(&seen, "x-tenant"), ["blue"], "{protocol}: REPLACE set it");
        assert_eq!(
            values(&seen, "x-trace"),
            Vec::<String>::new(),
            "{protocol}: LOG changes nothing"
        );

        let satisfied: &[Header<'_>] = &[
            h("X-Debug", b"off"),
            h("X-Tenant", b"blue"),
            h("X-Request-Source", b"frontend"),
            h("X-Trace", b"1"),
        ];
        let r = client::send_with(*protocol, &request, satisfied)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 200);
        let seen = sidecar.upstream.seen().pop().expect("the application got the request");
        assert_eq!(values(&seen, "x-request-source"), ["frontend"], "{protocol}: nothing to add");
        assert_eq!(values(&seen, "x-debug"), ["off"], "{protocol}: a matching header stays");

        let before = sidecar.upstream.count();
        let delete = Request { method: "DELETE", ..request };
        let r = client::send_with(*protocol, &delete, &[]).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.status, sidecar.upstream.count()), (403, before), "{protocol}: no rescue");
    }
    // The flow records: the first request of each protocol lists its four actions and their rule.
    let records = sidecar.envoy.wait_for_flow_records(6);
    let actions = |r: &serde_json::Value| -> Vec<String> {
        r["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                format!(
                    "{} {} {}",
                    a["action"].as_str().unwrap_or_default(),
                    a["name"].as_str().unwrap_or_default(),
                    a["rule"].as_str().unwrap_or_default()
                )
            })
            .collect()
    };
    let rule = "spec.ingress[0].toPorts[0].rules.http[0]";
    let want: Vec<String> =
        ["ADD x-request-source", "DELETE x-debug", "REPLACE x-tenant", "LOG x-trace"]
            .iter()
            .map(|a| format!("{a} {rule}"))
            .collect();
    assert_eq!(actions(&records[0]), want, "{:#?}", records[0]);
    assert_eq!(records[0]["headers"][0]["policy"], "default/inventory-api-rewrites");
    assert_eq!(actions(&records[1]), Vec::<String>::new(), "{:#?}", records[1]);
    assert_eq!(actions(&records[3]), want, "{:#?}", records[3]);

    // The metrics: one counter per action of the element, labelled with its rule.
    let (_, prometheus) =
        sidecar.envoy.admin_get("/stats/prometheus").unwrap_or_else(|e| panic!("{e}"));
    let count = |action: &str| {
        prometheus
            .lines()
            .find(|l| {
                l.contains("l7gate_header_actions")
                    && l.contains(&format!("action=\"{action}\""))
                    && l.contains(&format!("rule=\"{rule}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
    };
    for action in ["ADD", "DELETE", "REPLACE", "LOG"] {
        assert_eq!(count(action), Some(2), "{action} once per protocol:\n{prometheus}");
    }

    // trace reports the same actions.
    let loaded = l7gate::load(
        &fixture("header-actions").join("policies"),
        &fixture("header-actions").join("endpoints.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let query = l7gate::trace::Query {
        from: "frontend".into(),
        to: API.into(),
        port: 8080,
        path: Some("/api/inventory/1".into()),
        headers: vec![("x-debug".into(), "on".into())],
        ..Default::default()
    };
    let t = l7gate::trace::trace(&loaded.cluster, &query).unwrap_or_else(|e| panic!("{e}"));
    let traced: Vec<String> = t
        .ingress
        .expect("ingress")
        .rewrites
        .iter()
        .map(|r| r.split(" [").next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        traced,
        [
            "ADD x-request-source: frontend",
            "DELETE x-debug: off",
            "REPLACE x-tenant: blue",
            "LOG x-trace: "
        ]
    );
}

#[rustfmt::skip]
const NON_UTF8_TABLE: &[Row] = &[
    get(FRONTEND, API, "/tenant").over(RAW).with(&[h("X-Tenant", b"\xff\xfe\x80 blue")])
        .deny("spec §5.4 a non-UTF-8 value is answered, not a crash"),
    get(FRONTEND, API, "/token").over(RAW).with(&[h("X-Token", b"\xc3\x28\xff")])
        .allow("spec §5.4 presence: a non-UTF-8 value is present"),
    get(FRONTEND, API, "/tenant").over(RAW).with(&[h("X-Tenant", b"\xff")])
        .deny("spec §5.4 a non-UTF-8 value is answered, not a crash"),
    get(FRONTEND, API, "/tenant").over(ALL).with(&[h("X-Tenant", b"blue")])
        .allow("the VM still serves the next request, on a new connection"),
];

// A header value with a 0xff byte must not crash the filter: the request is answered as the rule
// says, and the next request, on a new connection, is still served by a working VM (a trap would
// give 503s until the VM is reloaded, see l7gate::ecds::FAILURE_POLICY).
#[tokio::test]
async fn non_utf8_header_value_does_not_kill_the_vm() {
    let cluster = start("headers");
    let envoy = &cluster.sidecar(API).expect("inventory-api sidecar").envoy;
    let created = || envoy.stat("wasm.envoy.wasm.runtime.v8.created");
    let vms_before = created();
    assert!(vms_before.is_some(), "Envoy has no wasm VM stats");
    assert_table(&cluster, NON_UTF8_TABLE).await;
    // A trap would make Envoy (FAIL_RELOAD) rebuild the VM: no new VM, no reload.
    assert_eq!(created(), vms_before, "a wasm VM was rebuilt: the filter trapped");
    for stat in ["vm_reload", "vm_reload_backoff", "vm_reload_failure"] {
        assert_eq!(envoy.stat(&format!("wasm.l7gate.{stat}")), Some(0), "wasm.l7gate.{stat}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Deny rules (spec §4.2). Fixture `deny`.

#[rustfmt::skip]
const DENY_TABLE: &[Row] = &[
    // inventory-api: frontend and reporting may GET /api/.*, another policy denies reporting.
    get(FRONTEND, "inventory-api", "/api/items")
        .allow("spec §4.2 the L7 allow holds for a peer nobody denies"),
    get(REPORTING, "inventory-api", "/api/items")
        .deny("spec §4.2 an L3 deny beats an L7 allow for the same peer"),
    get(REPORTING, "inventory-api", "/other").method("POST")
        .deny("spec §4.2 an L3 deny blocks every request of the peer"),
    // payment-gateway: frontend allowed on every port (L3-only), 8080 denied to all peers.
    get(FRONTEND, "payment-gateway", "/process-payment").method("POST")
        .deny("spec §4.2 a port deny (no L3 field) beats an L3-only allow"),
    get(WORLD, "payment-gateway", "/")
        .deny("spec §4.2 a port deny applies to every peer"),
    // catalog: the same shape denying port 9090 leaves 8080 alone.
    get(FRONTEND, "catalog", "/anything").method("DELETE")
        .allow("spec §4.2 a port deny only applies to its port; L3-only allow = every request"),
    get(REPORTING, "catalog", "/anything")
        .deny("spec §4.1 default-deny: the deny rule does not allow anyone else"),
];

#[tokio::test]
async fn deny_rules_beat_allow_rules() {
    let cluster = start("deny");
    assert_table(&cluster, DENY_TABLE).await;
}

// ---------------------------------------------------------------------------------------------
// 3. L7 wildcarding (spec §4.3). Fixture `wildcard`.

#[rustfmt::skip]
const WILDCARD_TABLE: &[Row] = &[
    // inventory-api: frontend has GET /api/inventory/.* and, in another policy, L4-only 8080.
    get(FRONTEND, "inventory-api", "/api/inventory/item1")
        .allow("spec §4.3 item 2 what the HTTP rule allows stays allowed"),
    get(FRONTEND, "inventory-api", "/admin").method("DELETE")
        .allow("spec §4.3 item 2 an L4-only rule for the same peer and port voids its HTTP rules"),
    get(REPORTING, "inventory-api", "/api/inventory/item1")
        .deny("spec §4.1 default-deny: other peers are still denied"),
    // payment-gateway: frontend has POST /process-payment; world has L4-only 8080.
    get(FRONTEND, "payment-gateway", "/process-payment").method("POST")
        .allow("spec §4.3 item 5 frontend's HTTP rule"),
    get(FRONTEND, "payment-gateway", "/process-payment")
        .deny("spec §4.3 item 5 an L4-only rule for world does not help frontend"),
    get(WORLD, "payment-gateway", "/anything").method("DELETE")
        .allow("spec §4.3 item 5 world itself may do anything"),
    get(REPORTING, "payment-gateway", "/process-payment").method("POST")
        .deny("spec §2.3 a pod is not world"),
    // catalog: frontend has GET /catalog/.*; every pod of the namespace has L4-only 8080.
    get(FRONTEND, "catalog", "/admin").method("DELETE")
        .allow("spec §4.3 item 3 a broader L4-only selector containing frontend voids its HTTP rules"),
    get(REPORTING, "catalog", "/admin").method("DELETE")
        .allow("spec §4.3 item 3 `fromEndpoints: [{}]` in a CNP: every pod of the namespace"),
    get(WORLD, "catalog", "/catalog/x")
        .deny("spec §2.3 `fromEndpoints: [{}]` does not select world"),
    // ledger: frontend has GET /ledger on 8080 and an L3-only rule (no toPorts).
    get(FRONTEND, "ledger", "/ledger")
        .allow("spec §4.3 item 4 the HTTP rule"),
    get(FRONTEND, "ledger", "/other").method("PUT")
        .allow("spec §4.3 item 4 an L3-only rule for the peer voids its HTTP rules on every port"),
];

#[tokio::test]
async fn l4_only_rules_void_http_rules_of_peers_they_contain() {
    let cluster = start("wildcard");
    assert_table(&cluster, WILDCARD_TABLE).await;
}

// ---------------------------------------------------------------------------------------------
// 4. enableDefaultDeny: {ingress: false} with HTTP rules (spec §4.1 case 3, §4.3 item 7).
//    Fixture `visibility`.

#[rustfmt::skip]
const VISIBILITY_TABLE: &[Row] = &[
    // inventory-api: default deny off, frontend has GET /api/inventory/.*.
    get(FRONTEND, "inventory-api", "/api/inventory/item1")
        .allow("spec §4.3 item 7 the HTTP rule's own requests pass"),
    get(FRONTEND, "inventory-api", "/admin").method("DELETE")
        .allow("spec §4.3 item 7 without default deny HTTP rules only add visibility"),
    get(REPORTING, "inventory-api", "/admin")
        .allow("spec §4.1 case 3 not default-deny: other peers pass"),
    get(WORLD, "inventory-api", "/admin").method("POST")
        .allow("spec §4.1 case 3 not default-deny: world passes"),
    // payment-gateway: the same, plus ingressDeny for reporting.
    get(FRONTEND, "payment-gateway", "/anything")
        .allow("spec §4.3 item 7 the HTTP rule does not block"),
    get(WORLD, "payment-gateway", "/anything")
        .allow("spec §4.1 case 3 not default-deny: world passes"),
    get(REPORTING, "payment-gateway", "/process-payment").method("POST")
        .deny("spec §4.1 case 3 everything passes except what deny rules forbid"),
    // catalog: another policy keeps default deny on, so the HTTP rules are enforced.
    get(FRONTEND, "catalog", "/catalog/a")
        .allow("spec §4.3 item 7 the HTTP rule"),
    get(FRONTEND, "catalog", "/admin").method("DELETE")
        .deny("spec §4.3 item 7 another policy makes the direction default-deny: L7 enforced"),
    get(REPORTING, "catalog", "/admin").method("DELETE")
        .allow("spec §4.1 case 2 reporting's L3-only allow"),
    get(WORLD, "catalog", "/catalog/a")
        .deny("spec §4.1 case 2 default-deny: world is not allowed"),
];

#[tokio::test]
async fn default_deny_off_makes_http_rules_visibility_only() {
    let cluster = start("visibility");
    assert_table(&cluster, VISIBILITY_TABLE).await;
}

// ---------------------------------------------------------------------------------------------
// 5. host matches :authority as sent, port included (spec §5.3). Fixture `host`.

#[rustfmt::skip]
const HOST_TABLE: &[Row] = &[
    // host: "inventory-api(:8080)?"
    get(FRONTEND, API, "/optional-port").over(ALL).authority("inventory-api:8080")
        .allow("spec §5.3 host matches :authority with its port"),
    get(FRONTEND, API, "/optional-port").over(ALL).authority("inventory-api")
        .allow("spec §5.3 host matches :authority without a port"),
    get(FRONTEND, API, "/optional-port").over(ALL).authority("inventory-api:9090")
        .deny("spec §5.2 full match: another port does not match"),
    get(FRONTEND, API, "/optional-port").over(ALL).authority("inventory-api.evil:8080")
        .deny("spec §5.2 full match: a longer host does not match"),
    // host: inventory-api
    get(FRONTEND, API, "/bare").over(ALL).authority("inventory-api")
        .allow("spec §5.3 host without a port matches a portless :authority"),
    get(FRONTEND, API, "/bare").over(ALL).authority("inventory-api:8080")
        .deny("spec §5.3 Cilium does not strip the port: `inventory-api` rejects `inventory-api:8080`"),
];

#[tokio::test]
async fn host_rules_match_the_authority_as_sent() {
    let cluster = start("host");
    assert_table(&cluster, HOST_TABLE).await;
}

// ---------------------------------------------------------------------------------------------
// 6. An unconfigured filter fails closed: an ECDS config whose plugin configuration is empty or
//    only whitespace is accepted by the filter (not refused, unlike a bad config: that gives
//    Envoy's 500 NFCF, see tests/seed.rs), and it answers every request with 403. A valid
//    config then heals the sidecar, so the 403 came from the empty config.

const ECDS: &str = "extension_config_discovery.http_filter.l7gate";

#[tokio::test]
async fn empty_plugin_configuration_denies_everything() {
    let tools = Tools::require();
    // Standalone sidecars on spare loopback addresses, port 0 (tests/README.md).
    for (listen, configuration) in [("127.0.0.26:0", ""), ("127.0.0.27:0", " \n\t ")] {
        let name = format!("unconfigured-{}", listen.split(':').next().unwrap_or(listen));
        let app = Upstream::start(&name).unwrap();
        let spec = SidecarSpec {
            name: name.clone(),
            listen: listen.parse().unwrap(),
            upstream: app.addr(),
            filter_config_json: configuration.to_string(),
        };
        let envoy = Envoy::start(&tools, &spec).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                envoy.stat(&format!("{ECDS}.update_success")),
                envoy.stat(&format!("{ECDS}.update_rejected"))
            ),
            (Some(1), Some(0)),
            "{configuration:?}: the filter must accept an empty configuration (and deny)"
        );
        for protocol in ALL {
            let req = Request {
                from: "127.0.0.2".parse().unwrap(),
                to: envoy.listener(),
                authority: "app:8080",
                method: "GET",
                path: "/anything",
            };
            let response = client::send(*protocol, &req)
                .await
                .unwrap_or_else(|e| panic!("{configuration:?} {protocol}: {e}"));
            assert_eq!(
                (response.status, response.body.as_str()),
                (403, "Access denied\r\n"),
                "{configuration:?} {protocol}"
            );
        }
        assert_eq!(app.count(), 0, "{configuration:?}: a request passed an unconfigured filter");

        envoy.write_filter_config(&config_without_rules(&name, false)).unwrap();
        assert_eq!(envoy.wait_for_stat(&format!("{ECDS}.update_success"), |n| n >= 2), Some(2));
        let req = Request {
            from: "127.0.0.2".parse().unwrap(),
            to: envoy.listener(),
            authority: "app:8080",
            method: "GET",
            path: "/after-config",
        };
        let healed = client::send_with(Protocol::Http1, &req, &[]).await.unwrap();
        assert_eq!((healed.status, healed.body), (200, format!("{name} saw GET /after-config")));
        assert_eq!(app.count(), 1);
    }
}
