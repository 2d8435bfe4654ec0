//! `l7gate serve --kubernetes`: policies and the inventory from the Kubernetes API server instead
//! of files. kube-rs watchers (list, then watch with bookmarks; a relist after `410 Gone`;
//! reconnects with backoff) keep one store each of CiliumNetworkPolicies,
//! CiliumClusterwideNetworkPolicies, Pods, Namespaces and Nodes. Nothing is published before
//! every store has listed once (a partial inventory or policy set could allow what the whole
//! would deny). After each burst of events the stores go through the same parser, validator and
//! diagnostics as files, each object named `<Kind> <namespace>/<name>` where a file name would
//! stand, and a valid state is published as the file watcher publishes it (`crate::watch`);
//! an invalid one is reported and the last good state stays. Every policy's own validity is
//! written to its status as Cilium does: a `Valid` condition, `True` or `False` with the errors.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::{self, store::Writer, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::watch::{Settings, DEBOUNCE};
use crate::xds::cache::Cache;
use crate::xds::report::Reloads;

/// The message of a `Valid: True` condition (Cilium's).
const VALID: &str = "Policy validation succeeded";
/// The annotation kubectl keeps a copy of the whole object in: not part of the policy.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A watched kind.
struct Kind {
    resource: ApiResource,
    namespaced: bool,
}

fn kind(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Kind {
    let api_version =
        if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Kind {
        resource: ApiResource {
            group: group.into(),
            version: version.into(),
            api_version,
            kind: kind.into(),
            plural: plural.into(),
        },
        namespaced,
    }
}

/// The stores of every watched kind.
struct Stores {
    cnp: Store<DynamicObject>,
    ccnp: Store<DynamicObject>,
    pods: Store<DynamicObject>,
    namespaces: Store<DynamicObject>,
    nodes: Store<DynamicObject>,
    services: Store<DynamicObject>,
    endpoint_slices: Store<DynamicObject>,
}

/// Follows the API server until an unrecoverable error, publishing to `cache`.
pub async fn run(settings: Settings, cache: Arc<Cache>, reloads: Reloads) -> Result<(), String> {
    let client = Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API server: {e}"))?;
    let kinds = [
        kind("cilium.io", "v2", "CiliumNetworkPolicy", "ciliumnetworkpolicies", true),
        kind(
            "cilium.io",
            "v2",
            "CiliumClusterwideNetworkPolicy",
            "ciliumclusterwidenetworkpolicies",
            false,
        ),
        kind("", "v1", "Pod", "pods", true),
        kind("", "v1", "Namespace", "namespaces", false),
        kind("", "v1", "Node", "nodes", false),
        kind("", "v1", "Service", "services", true),
        kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true),
    ];
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut stores = Vec::new();
    for k in &kinds {
        let writer = Writer::new(k.resource.clone());
        stores.push(writer.as_reader());
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &k.resource);
        let events = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff();
        let (tx, name) = (tx.clone(), k.resource.plural.clone());
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(_) => {
                        let _ = tx.send(());
                    }
                    // The watcher retries by itself (relisting when its version expired).
                    Err(e) => warn!(resource = %name, error = %e, "watch error; retrying"),
                }
            }
        });
    }
    let [cnp, ccnp, pods, namespaces, nodes, services, endpoint_slices]: [Store<DynamicObject>; 7] =
        stores.try_into().map_err(|_| "internal: one store per kind".to_string())?;
    let stores = Stores { cnp, ccnp, pods, namespaces, nodes, services, endpoint_slices };
    let all = [
        &stores.cnp,
        &stores.ccnp,
        &stores.pods,
        &stores.namespaces,
        &stores.nodes,
        &stores.services,
        &stores.endpoint_slices,
    ];
    for (store, k) in all.into_iter().zip(&kinds) {
        store
            .wait_until_ready()
            .await
            .map_err(|e| format!("watching {}: {e}", k.resource.plural))?;
    }
    info!("every watch has listed once");
    loop {
        // Everything that arrived until DEBOUNCE of quiet is one rebuild.
        while tokio::time::timeout(DEBOUNCE, rx.recv()).await.is_ok_and(|e| e.is_some()) {}
        rebuild(&client, &stores, &kinds, &settings, &cache, &reloads).await;
        if rx.recv().await.is_none() {
            return Err("every watch stopped".into());
        }
    }
}

/// Parses, validates and publishes the stores' state; writes the policies' `Valid` conditions.
async fn rebuild(
    client: &Client,
    stores: &Stores,
    kinds: &[Kind],
    settings: &Settings,
    cache: &Arc<Cache>,
    reloads: &Reloads,
) {
    // Kinds from the store, not the objects: list items need not carry apiVersion and kind.
    let mut policies: Vec<(Arc<DynamicObject>, &Kind)> =
        stores.cnp.state().into_iter().map(|o| (o, &kinds[0])).collect();
    policies.extend(stores.ccnp.state().into_iter().map(|o| (o, &kinds[1])));
    policies.sort_by_key(|(o, k)| source_name(o, k));
    let sources: Vec<(PathBuf, String)> = policies
        .iter()
        .map(|(o, k)| (PathBuf::from(source_name(o, k)), policy_text(o, k)))
        .collect();
    // Each policy's own verdict: the errors it alone has (parsed alone, so one policy's error
    // never marks another invalid; duplicates across policies show in the set's verdict).
    let own: Vec<Result<(), String>> = sources
        .iter()
        .map(|s| {
            crate::cilium::parse::parse_sources(std::slice::from_ref(s))
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .collect();
    let parsed = crate::cilium::parse::parse_sources(&sources);
    let inventory = crate::inventory::parse_str(
        std::path::Path::new("the Kubernetes API (pods, namespaces, nodes)"),
        &inventory_list(stores).to_string(),
    );
    let loaded = crate::assemble(parsed, inventory);
    let (settings, cache, reloads) = (settings.clone(), Arc::clone(cache), Arc::clone(reloads));
    let published = tokio::task::spawn_blocking(move || {
        crate::watch::publish(loaded, &settings, &cache, &reloads)
    })
    .await;
    if let Err(e) = published {
        warn!(error = %e, "rebuild task failed");
    }
    for ((object, kind), verdict) in policies.iter().zip(own) {
        write_condition(client, kind, object, verdict).await;
    }
}

/// `<Kind> <namespace>/<name>` (cluster-wide: `<Kind> <name>`): where a file name would stand.
fn source_name(object: &DynamicObject, kind: &Kind) -> String {
    let kind = &kind.resource.kind;
    let name = object.metadata.name.as_deref().unwrap_or_default();
    match &object.metadata.namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The policy as the parser reads it: what a user wrote (apiVersion, kind, metadata.name,
/// namespace, labels, annotations, spec, specs), without what the API server adds.
fn policy_text(object: &DynamicObject, kind: &Kind) -> String {
    let mut metadata = serde_json::Map::new();
    metadata.insert("name".into(), json!(object.metadata.name));
    if let Some(ns) = &object.metadata.namespace {
        metadata.insert("namespace".into(), json!(ns));
    }
    if let Some(labels) = &object.metadata.labels {
        metadata.insert("labels".into(), json!(labels));
    }
    if let Some(annotations) = &object.metadata.annotations {
        let kept: std::collections::BTreeMap<_, _> =
            annotations.iter().filter(|(k, _)| *k != LAST_APPLIED).collect();
        if !kept.is_empty() {
            metadata.insert("annotations".into(), json!(kept));
        }
    }
    let mut doc = serde_json::Map::new();
    doc.insert("apiVersion".into(), json!(kind.resource.api_version));
    doc.insert("kind".into(), json!(kind.resource.kind));
    doc.insert("metadata".into(), Value::Object(metadata));
    for field in ["spec", "specs"] {
        if let Some(v) = object.data.get(field) {
            doc.insert(field.into(), v.clone());
        }
    }
    // JSON is YAML; pretty, so that a position means something.
    serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default()
}

/// The inventory as a `v1 List` (the format `kubectl get
/// pods,namespaces,nodes,services,endpointslices -A -o yaml` prints, which the inventory reader
/// takes), of what the reader uses. Pods that are finished
/// (Succeeded, Failed) or share the node's network (hostNetwork: their address is the node's,
/// identity `host`) are left out, as Cilium gives them no endpoint.
fn inventory_list(stores: &Stores) -> Value {
    let meta = |o: &DynamicObject| json!({"name": o.metadata.name, "namespace": o.metadata.namespace, "labels": o.metadata.labels});
    let mut items = Vec::new();
    for ns in sorted(stores.namespaces.state()) {
        items.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta(&ns)}));
    }
    for node in sorted(stores.nodes.state()) {
        items.push(json!({"apiVersion": "v1", "kind": "Node", "metadata": meta(&node),
            "status": {"addresses": node.data["status"]["addresses"]}}));
    }
    for pod in sorted(stores.pods.state()) {
        let (spec, status) = (&pod.data["spec"], &pod.data["status"]);
        let finished = matches!(status["phase"].as_str(), Some("Succeeded" | "Failed"));
        if finished || spec["hostNetwork"] == json!(true) {
            continue;
        }
        let containers: Vec<Value> = spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!({"name": c["name"], "ports": c.get("ports").cloned().unwrap_or(json!([]))}))
            .collect();
        items.push(json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta(&pod),
            "spec": {"containers": containers, "serviceAccountName": spec["serviceAccountName"], "nodeName": spec["nodeName"]},
            "status": {"podIP": status["podIP"], "podIPs": status["podIPs"]}}));
    }
    for service in sorted(stores.services.state()) {
        items.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(&service),
            "spec": {"selector": service.data["spec"]["selector"]}}));
    }
    for slice in sorted(stores.endpoint_slices.state()) {
        let endpoints: Vec<Value> = slice.data["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| json!({"addresses": e["addresses"]}))
            .collect();
        items.push(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": meta(&slice), "endpoints": endpoints}));
    }
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

fn sorted(mut objects: Vec<Arc<DynamicObject>>) -> Vec<Arc<DynamicObject>> {
    objects.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    objects
}

/// Sets the policy's `Valid` condition unless it already says the same (so the status write,
/// itself a watch event, does not write again).
async fn write_condition(
    client: &Client,
    kind: &Kind,
    object: &DynamicObject,
    verdict: Result<(), String>,
) {
    let (status, message) = match &verdict {
        Ok(()) => ("True", VALID.to_string()),
        Err(e) => ("False", e.trim_end().to_string()),
    };
    let conditions = object.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let current = conditions.iter().find(|c| c["type"] == "Valid");
    if current.is_some_and(|c| c["status"] == status && c["message"] == message.as_str()) {
        return;
    }
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut conditions: Vec<Value> =
        conditions.into_iter().filter(|c| c["type"] != "Valid").collect();
    conditions.push(
        json!({"type": "Valid", "status": status, "lastTransitionTime": now, "message": message}),
    );
    let patch = json!({"status": {"conditions": conditions}});
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let api: Api<DynamicObject> = match (&object.metadata.namespace, kind.namespaced) {
        (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &kind.resource),
        _ => Api::all_with(client.clone(), &kind.resource),
    };
    match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => {
            info!(policy = %source_name(object, kind), valid = status, "policy status written")
        }
        Err(e) => {
            warn!(policy = %source_name(object, kind), error = %e, "cannot write the policy's status")
        }
    }
}
