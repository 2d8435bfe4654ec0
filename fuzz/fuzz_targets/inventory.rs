//! The inventory (l7gate's format and a kubectl `v1 List`): never a panic or a hang; an accepted
//! inventory compiles a config for each of its endpoints with no policy.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(inventory) = l7gate::inventory::parse_str(Path::new("endpoints.yaml"), &text) else {
        return;
    };
    let cluster = l7gate::compile::Cluster::new(Vec::new(), inventory);
    for endpoint in cluster.inventory.endpoints.iter().take(16) {
        if let Err(e) = cluster.compile(endpoint) {
            panic!("an accepted inventory does not compile for {}: {e}", endpoint.name);
        }
    }
});
