//! From a validated [`Cluster`] to the snapshot of every endpoint: each endpoint's filter config,
//! compiled, wrapped in its ECDS resource (`crate::ecds::resource`), versioned by content. All or
//! nothing: one endpoint that does not compile rejects the whole new state.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use super::cache::{Resource, Snapshot};
use crate::compile::Cluster;
use crate::ecds;
use crate::identity::qualified;

/// Snapshots by endpoint key: `namespace/name` for every endpoint, and the bare `name` too where
/// it is unambiguous (the same rule as `l7gate compile --endpoint`).
pub fn build(cluster: &Cluster, wasm: &Path) -> Result<BTreeMap<String, Arc<Snapshot>>, String> {
    let mut out = BTreeMap::new();
    for endpoint in &cluster.inventory.endpoints {
        let key = qualified(endpoint);
        let config = cluster.compile(endpoint).map_err(|e| format!("endpoint {key}: {e}"))?;
        let snapshot = Arc::new(snapshot_of(&config.to_json(), wasm));
        if cluster.endpoint(&endpoint.name).is_ok() {
            out.insert(endpoint.name.clone(), Arc::clone(&snapshot));
        }
        out.insert(key, snapshot);
    }
    Ok(out)
}

/// The snapshot that carries one filter config.
pub fn snapshot_of(config_json: &str, wasm: &Path) -> Snapshot {
    let resource = ecds::resource(config_json, wasm);
    let value = resource.encode_to_vec();
    let resource = Resource {
        name: resource.name,
        version: ecds::version(&value),
        body: Any { type_url: ecds::TYPED_EXTENSION_CONFIG_TYPE.to_string(), value },
    };
    let mut resources = BTreeMap::new();
    resources.insert(
        ecds::TYPED_EXTENSION_CONFIG_TYPE.to_string(),
        BTreeMap::from([(resource.name.clone(), resource)]),
    );
    Snapshot { resources }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;

    fn seed() -> Cluster {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        crate::load(&root.join("policies"), &root.join("endpoints.yaml")).expect("seed manifests load").cluster
    }

    #[test]
    fn every_endpoint_gets_its_compiled_config_under_both_names() {
        let cluster = seed();
        let wasm = Path::new("/opt/l7gate.wasm");
        let snapshots = build(&cluster, wasm).expect("seed compiles");
        let api = &snapshots["default/inventory-api"];
        assert!(Arc::ptr_eq(api, &snapshots["inventory-api"]));
        let r = &api.resources[ecds::TYPED_EXTENSION_CONFIG_TYPE]["l7gate"];
        assert_eq!(r.body.type_url, ecds::TYPED_EXTENSION_CONFIG_TYPE);
        let decoded = TypedExtensionConfig::decode(r.body.value.as_slice()).expect("decodes");
        let endpoint = cluster.endpoint("inventory-api").expect("known");
        let expected = ecds::resource(&cluster.compile(endpoint).expect("compiles").to_json(), wasm);
        assert_eq!(decoded, expected);
        assert_eq!(r.version, ecds::version(&r.body.value));
        assert_ne!(r.version, snapshots["payment-gateway"].resources[ecds::TYPED_EXTENSION_CONFIG_TYPE]["l7gate"].version);
    }

    #[test]
    fn versions_are_stable_across_builds_and_track_the_wasm_path() {
        let cluster = seed();
        let a = build(&cluster, Path::new("/a.wasm")).expect("a");
        assert_eq!(a, build(&cluster, Path::new("/a.wasm")).expect("a again"));
        assert_ne!(a["catalog"], build(&cluster, Path::new("/b.wasm")).expect("b")["catalog"]);
    }
}
