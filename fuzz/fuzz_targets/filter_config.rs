//! The filter's configuration → engine build (what `on_configure` does with bytes from Envoy):
//! never a panic; a config that compiles decides requests without panicking and round-trips
//! through its JSON form.
#![no_main]

use l7gate_filter::config::{Config, Protocol};
use l7gate_filter::engine::{Direction, Engine, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = Config::from_json(data) else { return };
    let Ok(engine) = Engine::compile(&config) else { return };
    let json = config.to_json().expect("a parsed config serialises");
    let again = Config::from_json(json.as_bytes()).expect("a config re-reads its JSON");
    assert_eq!(again, config, "the JSON form changed the config");
    for (direction, peer, port) in
        [(Direction::Ingress, 2, 80), (Direction::Egress, 256, 443), (Direction::Ingress, 1, 0)]
    {
        let request = Request {
            direction,
            peer,
            port,
            protocol: Protocol::Tcp,
            server_name: Some("a.b."),
            sni: Some("a.b."),
        };
        let _ = engine.decide(&request, None);
    }
});
