//! One request as Envoy hands it to the filter: the header map (the ABI's pair encoding, with
//! the connection header) parsed and decided against the seed's inventory-api and frontend
//! configs, ingress and egress. Never a panic; an HTTP rule never allows a path with a dot
//! segment (`engine::pathform`: the application could resolve it elsewhere).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use l7gate_filter::config::Protocol;
use l7gate_filter::engine::{Direction, Engine, Reason, Request};
use l7gate_filter::fqdn::Destination;
use l7gate_filter::headermap::{connection_addresses, HeaderMap, CONNECTION_HEADER};
use libfuzzer_sys::fuzz_target;

fn engines() -> &'static [Engine; 2] {
    static ENGINES: OnceLock<[Engine; 2]> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let compiled = |name: &str| {
            let config = l7gate::compile_endpoint(
                &manifests.join("policies"),
                &manifests.join("endpoints.yaml"),
                name,
            )
            .expect("seed compiles");
            Engine::compile(&config).expect("filter accepts the seed")
        };
        [compiled("inventory-api"), compiled("frontend")]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(headers) = HeaderMap::parse(data, Some(CONNECTION_HEADER)) else { return };
    let addresses = headers.connection.and_then(connection_addresses);
    let authority = headers.authority.and_then(|a| std::str::from_utf8(a).ok());
    let destination = authority.and_then(|a| Destination::of_authority_with_port(a, 80));
    for (engine, direction) in engines().iter().zip([Direction::Ingress, Direction::Egress]) {
        let (peer, port, server_name) = match (direction, &destination) {
            (Direction::Egress, Some((d, port))) => {
                (d.peer(|ip| engine.identity_of(ip)), *port, d.name())
            }
            _ => (
                addresses.map_or(2, |(source, _)| engine.identity_of(source.ip())),
                addresses.map_or(8080, |(_, local)| local.port()),
                None,
            ),
        };
        let request = Request {
            direction,
            peer,
            port,
            protocol: Protocol::Tcp,
            server_name,
            sni: server_name,
        };
        let verdict = engine.decide(&request, Some(&headers));
        if matches!(verdict.reason, Reason::AllowedL7 { .. }) {
            let path = headers.path.unwrap_or_default();
            let before_query = path.split(|b| *b == b'?').next().unwrap_or_default();
            assert!(
                !before_query.split(|b| *b == b'/').any(|s| s == b"." || s == b".."),
                "an HTTP rule allowed a dot segment: {:?}",
                String::from_utf8_lossy(path)
            );
        }
    }
});
