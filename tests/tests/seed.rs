//! Seed end-to-end tests: the seed table against real Envoys running the real l7gate wasm
//! filter, compiled from `manifests/` by the control plane; plus the filter's fail-closed
//! behaviour on a config it refuses, and default-deny of an enforced direction without rules.

use std::net::{IpAddr, SocketAddr};

use l7gate_e2e::harness::client::{self, Protocol, Request, Response};
use l7gate_e2e::harness::cluster::Cluster;
use l7gate_e2e::harness::envoy::{config_without_rules, Envoy, SidecarSpec};
use l7gate_e2e::harness::tools::Tools;
use l7gate_e2e::harness::upstream::Upstream;
use l7gate_e2e::scenario::{self, SEED};
use l7gate_filter::headermap::{CONNECTION_HEADER, CONNECTION_HEADER_KEY};

const FRONTEND: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

#[tokio::test]
async fn seed_table_holds_against_real_envoys() {
    let cluster = Cluster::start_seed().unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    let mut rows = 0;
    for (case, protocol) in scenario::requests(SEED) {
        rows += 1;
        let outcome = scenario::run(&cluster, case, protocol)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.describe(protocol)));
        if let Err(why) = scenario::check(case, &outcome) {
            failures.push(format!("{} [{}]\n    {why}", case.describe(protocol), case.spec));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {rows} seed requests differ from the table:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn sidecar(name: &str, listen: &str, upstream: &Upstream, config_json: String) -> SidecarSpec {
    SidecarSpec {
        name: name.to_string(),
        listen: listen.parse().unwrap_or_else(|e| panic!("{listen}: {e}")),
        upstream: upstream.addr(),
        filter_config_json: config_json,
    }
}

async fn get(to: SocketAddr, path: &str) -> Response {
    let req = Request { from: FRONTEND, to, authority: "app:8080", method: "GET", path };
    client::send(Protocol::Http1, &req).await.unwrap_or_else(|e| panic!("GET {to}{path}: {e}"))
}

// spec §4.1 case 2: an enforced direction allows only what a rule allows; no rule, no traffic.
// The twin sidecar differs only in `enforced: false` (spec §4.1 case 1) and lets the same
// request through, so the 403 is the filter's verdict and not a broken sidecar.
#[tokio::test]
async fn enforced_direction_without_rules_denies_everything() {
    let tools = Tools::require();
    let denied_app = Upstream::start("denied-app").unwrap();
    let open_app = Upstream::start("open-app").unwrap();
    let enforced = Envoy::start(
        &tools,
        &sidecar("enforced", "127.0.0.21:0", &denied_app, config_without_rules("enforced", true)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let open = Envoy::start(
        &tools,
        &sidecar("open", "127.0.0.22:0", &open_app, config_without_rules("open", false)),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let denied = get(enforced.listener(), "/anything").await;
    assert_eq!((denied.status, denied.body.as_str()), (403, "Access denied\r\n"));
    assert_eq!(denied_app.count(), 0, "a denied request reached the application");

    let allowed = get(open.listener(), "/anything").await;
    assert_eq!((allowed.status, allowed.body.as_str()), (200, "open-app saw GET /anything"));
    assert_eq!(open_app.count(), 1);
}

// The filter decides by the connection's real peer and local port, whether the bootstrap hands
// them over in the connection header (the templates: one header read per request) or not (a
// bootstrap whose node metadata names no header: `source.address`/`destination.address`
// properties). Either way a client's own connection header changes nothing: with the header
// Envoy replaces it, without it the filter ignores it. The flow record shows what was decided on.
#[tokio::test]
async fn peer_and_port_are_the_connections_with_or_without_the_connection_header() {
    let tools = Tools::require();
    let app = Upstream::start("app").unwrap();
    let without_metadata = |bootstrap: String| {
        let edited = bootstrap.replace(
            &format!("  metadata:\n    {CONNECTION_HEADER_KEY}: {CONNECTION_HEADER}\n"),
            "",
        );
        assert_ne!(edited, bootstrap, "the template's node metadata moved; update this test");
        edited
    };
    let spec =
        |name: &str, listen: &str| sidecar(name, listen, &app, config_without_rules(name, false));
    let mut with_header = Envoy::spawn(&tools, &spec("with-header", "127.0.0.23:0"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut without =
        Envoy::spawn_edited(&tools, &spec("without-header", "127.0.0.24:0"), without_metadata)
            .unwrap_or_else(|e| panic!("{e}"));
    for envoy in [&mut with_header, &mut without] {
        envoy.wait_ready().unwrap_or_else(|e| panic!("{e}"));
        let to = envoy.listener();
        for protocol in [Protocol::Http1, Protocol::Http2] {
            let req =
                Request { from: FRONTEND, to, authority: "app:8080", method: "GET", path: "/x" };
            let spoofed: &[client::Header<'_>] =
                &[(CONNECTION_HEADER, b"127.0.0.99:1 127.0.0.98:9")];
            let response =
                client::send_with(protocol, &req, spoofed).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(response.status, 200, "{} {protocol:?}", envoy.name());
        }
        let records = envoy.wait_for_flow_records(2);
        for r in &records {
            let seen = (r["src"]["ip"].as_str(), r["dst"]["ip"].as_str(), r["port"].as_u64());
            assert_eq!(
                seen,
                (Some("127.0.0.2"), Some(to.ip().to_string().as_str()), Some(u64::from(to.port()))),
                "{}: {r}",
                envoy.name()
            );
        }
    }
    assert!(
        app.seen().iter().all(|s| !s.header_names.iter().any(|n| n == CONNECTION_HEADER)),
        "{:?}",
        app.seen()
    );
}

// Fail closed: a config the filter refuses (a schema version it does not read) must never turn
// into "no filter". Observed on Envoy 1.40: Envoy still starts and turns LIVE, rejects the ECDS
// resource, and answers every request on the listener itself with an empty 500 (response flag
// NFCF, no filter config), without contacting the application. Renaming a valid config onto the
// ECDS file then heals the sidecar, which proves the 500 came from the refused config.
#[tokio::test]
async fn refused_filter_config_fails_closed_until_a_valid_one_arrives() {
    const ECDS: &str = "extension_config_discovery.http_filter.l7gate";
    let tools = Tools::require();
    let app = Upstream::start("guarded-app").unwrap();
    let mut refused: serde_json::Value =
        serde_json::from_str(&config_without_rules("refused", false)).unwrap();
    refused["version"] = 999.into();
    let envoy =
        Envoy::start(&tools, &sidecar("refused", "127.0.0.20:0", &app, refused.to_string()))
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(envoy.stat(&format!("{ECDS}.update_rejected")), Some(1));
    assert_eq!(envoy.stat(&format!("{ECDS}.update_success")), Some(0));
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let req = Request {
            from: FRONTEND,
            to: envoy.listener(),
            authority: "app:8080",
            method: "GET",
            path: "/",
        };
        let response =
            client::send(protocol, &req).await.unwrap_or_else(|e| panic!("{protocol}: {e}"));
        assert_eq!(
            (response.status, response.body.as_str()),
            (500, ""),
            "{protocol}: {response:?}"
        );
    }
    assert_eq!(app.count(), 0, "a request passed a sidecar whose filter config was refused");

    envoy.write_filter_config(&config_without_rules("refused", false)).unwrap();
    assert_eq!(envoy.wait_for_stat(&format!("{ECDS}.update_success"), |n| n >= 1), Some(1));
    let healed = get(envoy.listener(), "/after-fix").await;
    assert_eq!((healed.status, healed.body.as_str()), (200, "guarded-app saw GET /after-fix"));
    assert_eq!(app.count(), 1);
}
