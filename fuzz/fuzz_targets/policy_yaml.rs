//! Policy YAML (CNP/CCNP) through the parser and validator: never a panic or a hang; a text that
//! is accepted compiles for every endpoint of the seed inventory, and the filter accepts each
//! config it produces (the control plane's own check runs in `compile`).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn inventory() -> &'static l7gate::inventory::Inventory {
    static INVENTORY: OnceLock<l7gate::inventory::Inventory> = OnceLock::new();
    INVENTORY.get_or_init(|| {
        let text = include_str!("../../manifests/endpoints.yaml");
        l7gate::inventory::parse_str(Path::new("endpoints.yaml"), text).expect("seed inventory")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(loaded) = l7gate::cilium::parse::parse_str(Path::new("fuzz.yaml"), &text) else {
        return;
    };
    let cluster = l7gate::compile::Cluster::new(loaded.policies, inventory().clone());
    for endpoint in &cluster.inventory.endpoints {
        if let Err(e) = cluster.compile(endpoint) {
            panic!("an accepted policy does not compile for {}: {e}", endpoint.name);
        }
    }
});
