//! From a validated [`Cluster`] to the snapshot of every endpoint: each endpoint's filter config,
//! compiled, wrapped in one ECDS resource per filter role (`crate::ecds::resource_for`: the
//! ingress sidecar's `l7gate`, the egress Envoy's `l7gate-egress-http`, `l7gate-egress-tls` and
//! `l7gate-egress-dns`),
//! versioned by content. An Envoy gets the resources its ECDS subscriptions name. All or nothing:
//! one endpoint that does not compile rejects the whole new state.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use super::cache::{Resource, Snapshot};
use crate::compile::Cluster;
use crate::ecds::{self, Role};
use crate::identity::qualified;
use crate::inventory::Endpoint;

/// Snapshots by endpoint key: `namespace/name` for every endpoint, and the bare `name` too where
/// it is unambiguous (the same rule as `l7gate compile --endpoint`).
///
/// Every config carries the whole identity table and ipcache, so the work grows with the square
/// of the endpoint count (docs/xds.md, "Propagation and scale"): the endpoints are compiled on
/// all CPUs, in contiguous shares, and the first error in inventory order is the one reported.
/// `roles` are the filter roles served: the ingress filter always, the egress filters only for
/// fleets with egress Envoys (`l7gate serve --egress`), since each role repeats the whole config.
pub fn build(
    cluster: &Cluster,
    wasm: &Path,
    roles: &[Role],
) -> Result<BTreeMap<String, Arc<Snapshot>>, String> {
    let endpoints = &cluster.inventory.endpoints;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = endpoints.len().div_ceil(workers).max(1);
    let compile = |endpoint: &Endpoint| -> Result<Arc<Snapshot>, String> {
        let config = cluster
            .compile(endpoint)
            .map_err(|e| format!("endpoint {}: {e}", qualified(endpoint)))?;
        let json =
            config.to_json().map_err(|e| format!("endpoint {}: {e}", qualified(endpoint)))?;
        Ok(Arc::new(snapshot_of(&json, wasm, roles)))
    };
    let snapshots: Vec<Result<Arc<Snapshot>, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = endpoints
            .chunks(share)
            .map(|part| scope.spawn(move || part.iter().map(compile).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    let mut out = BTreeMap::new();
    for (endpoint, snapshot) in endpoints.iter().zip(snapshots) {
        let key = qualified(endpoint);
        let snapshot = snapshot?;
        if cluster.endpoint(&endpoint.name).is_ok() {
            out.insert(endpoint.name.clone(), Arc::clone(&snapshot));
        }
        out.insert(key, snapshot);
    }
    Ok(out)
}

/// The snapshot that carries one filter config, as the resource of each of `roles`.
pub fn snapshot_of(config_json: &str, wasm: &Path, roles: &[Role]) -> Snapshot {
    let of_type = roles
        .iter()
        .map(|&role| {
            let resource = ecds::resource_for(role, config_json, wasm);
            let value = resource.encode_to_vec();
            let resource = Resource {
                name: resource.name,
                version: ecds::version(&value),
                body: Any { type_url: ecds::TYPED_EXTENSION_CONFIG_TYPE.to_string(), value },
            };
            (resource.name.clone(), resource)
        })
        .collect();
    Snapshot {
        resources: BTreeMap::from([(ecds::TYPED_EXTENSION_CONFIG_TYPE.to_string(), of_type)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;

    fn seed() -> Cluster {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        crate::load(&root.join("policies"), &root.join("endpoints.yaml"))
            .expect("seed manifests load")
            .cluster
    }

    #[test]
    fn every_endpoint_gets_its_compiled_config_under_both_names() {
        let cluster = seed();
        let wasm = Path::new("/opt/l7gate.wasm");
        let snapshots = build(&cluster, wasm, &[Role::Ingress]).expect("seed compiles");
        let api = &snapshots["default/inventory-api"];
        assert!(Arc::ptr_eq(api, &snapshots["inventory-api"]));
        let r = &api.resources[ecds::TYPED_EXTENSION_CONFIG_TYPE]["l7gate"];
        assert_eq!(r.body.type_url, ecds::TYPED_EXTENSION_CONFIG_TYPE);
        let decoded = TypedExtensionConfig::decode(r.body.value.as_slice()).expect("decodes");
        let endpoint = cluster.endpoint("inventory-api").expect("known");
        let expected = ecds::resource(
            &cluster.compile(endpoint).expect("compiles").to_json().expect("json"),
            wasm,
        );
        assert_eq!(decoded, expected);
        assert_eq!(r.version, ecds::version(&r.body.value));
        assert_ne!(
            r.version,
            snapshots["payment-gateway"].resources[ecds::TYPED_EXTENSION_CONFIG_TYPE]["l7gate"]
                .version
        );
        assert_eq!(
            api.resources[ecds::TYPED_EXTENSION_CONFIG_TYPE].len(),
            1,
            "no egress resources unless asked for"
        );
    }

    /// With `serve --egress`, the egress Envoy of a workload subscribes to its egress filters'
    /// resources by name.
    #[test]
    fn with_egress_every_endpoint_gets_its_egress_resources_too() {
        let cluster = seed();
        let wasm = Path::new("/opt/l7gate.wasm");
        let snapshots = build(&cluster, wasm, &Role::ALL).expect("seed compiles");
        let config = cluster
            .compile(cluster.endpoint("frontend").expect("known"))
            .expect("compiles")
            .to_json()
            .expect("json");
        let of_type = &snapshots["frontend"].resources[ecds::TYPED_EXTENSION_CONFIG_TYPE];
        assert_eq!(
            of_type.keys().map(String::as_str).collect::<Vec<_>>(),
            ["l7gate", "l7gate-egress-dns", "l7gate-egress-http", "l7gate-egress-tls"]
        );
        for role in [Role::EgressHttp, Role::EgressTls, Role::EgressDns] {
            let r = &of_type[ecds::filter_name(role)];
            let decoded = TypedExtensionConfig::decode(r.body.value.as_slice()).expect("decodes");
            assert_eq!(decoded, ecds::resource_for(role, &config, wasm));
        }
    }

    #[test]
    fn versions_are_stable_across_builds_and_track_the_wasm_path() {
        let cluster = seed();
        let a = build(&cluster, Path::new("/a.wasm"), &Role::ALL).expect("a");
        assert_eq!(a, build(&cluster, Path::new("/a.wasm"), &Role::ALL).expect("a again"));
        assert_ne!(
            a["catalog"],
            build(&cluster, Path::new("/b.wasm"), &Role::ALL).expect("b")["catalog"]
        );
    }
}
