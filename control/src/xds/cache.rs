//! What the ADS server serves, and what each Envoy did with it: immutable per-endpoint snapshots
//! with content-hash versions, one `watch` channel per endpoint key (so a slow or stuck stream
//! never holds up a push to anyone else), and per node and resource the last version sent, acked
//! and rejected. Knows nothing about policies: the producer hands it finished resources.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::google::protobuf::Any;
use tokio::sync::watch;

use super::report::{NackInfo, NodeStatus, ResourceStatus};

/// One resource as it goes on the wire, with its content version.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    /// A hash of `body.value`: equal bytes, equal version, across restarts too.
    pub version: String,
    /// The resource, packed (`type_url` is the resource type).
    pub body: Any,
}

/// Everything one endpoint's Envoy gets: resources by type URL, then by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub resources: BTreeMap<String, BTreeMap<String, Resource>>,
}

impl Snapshot {
    /// The resources of `type_url` named in `names` (all of them if `names` is empty: wildcard).
    pub fn select(&self, type_url: &str, names: &[String]) -> Vec<&Resource> {
        let Some(of_type) = self.resources.get(type_url) else { return Vec::new() };
        if names.is_empty() {
            return of_type.values().collect();
        }
        names.iter().filter_map(|n| of_type.get(n)).collect()
    }
}

/// The `version_info` of a response carrying `resources`: the resource's own version when there
/// is one (the usual ECDS case, readable in Envoy's stats), else a hash of all of them.
pub fn response_version(resources: &[&Resource]) -> String {
    match resources {
        [one] => one.version.clone(),
        many => {
            let joined: Vec<&str> =
                many.iter().flat_map(|r| [r.name.as_str(), r.version.as_str()]).collect();
            crate::ecds::version(joined.join("\n").as_bytes())
        }
    }
}

/// What a snapshot receiver sees: the endpoint's current snapshot, or why there is none.
pub type Published = Result<Arc<Snapshot>, String>;

/// Per-(node, resource) bookkeeping.
#[derive(Debug, Clone, Default)]
struct ResourceState {
    pushes: u64,
    acked: Option<String>,
    pending: Option<String>,
    nack: Option<NackInfo>,
}

/// One Envoy, by node id.
#[derive(Debug, Default)]
struct NodeState {
    endpoint: String,
    streams: usize,
    /// (type URL, resource name) → state.
    resources: BTreeMap<(String, String), ResourceState>,
}

#[derive(Default)]
struct Inner {
    /// Endpoint key → its snapshot channel. Keys are created on demand by [`Cache::subscribe`]
    /// and by [`Cache::publish`].
    channels: HashMap<String, watch::Sender<Published>>,
    /// The last published set, for keys subscribed later.
    snapshots: BTreeMap<String, Arc<Snapshot>>,
    nodes: BTreeMap<String, NodeState>,
}

/// The snapshot cache; share it as `Arc<Cache>`.
#[derive(Default)]
pub struct Cache {
    inner: Mutex<Inner>,
}

impl Cache {
    pub fn new() -> Cache {
        Cache::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces every snapshot at once (keys not in `snapshots` lose theirs). Only channels whose
    /// snapshot actually changed are notified; returns their keys.
    pub fn publish(&self, snapshots: BTreeMap<String, Arc<Snapshot>>) -> Vec<String> {
        let mut inner = self.lock();
        let mut changed = Vec::new();
        let known = known_keys(&snapshots);
        for (key, tx) in &inner.channels {
            let next: Published = snapshots.get(key).cloned().ok_or_else(|| unknown(key, &known));
            let same = match (&*tx.borrow(), &next) {
                (Ok(a), Ok(b)) => a == b,
                (Err(a), Err(b)) => a == b,
                _ => false,
            };
            if !same {
                let _ = tx.send_replace(next);
                changed.push(key.clone());
            }
        }
        inner.snapshots = snapshots;
        changed.sort();
        changed
    }

    /// The snapshot channel of endpoint `key` (created if needed, holding the current state).
    pub fn subscribe(&self, key: &str) -> watch::Receiver<Published> {
        let mut inner = self.lock();
        let current: Published = match inner.snapshots.get(key) {
            Some(s) => Ok(Arc::clone(s)),
            None => Err(unknown(key, &known_keys(&inner.snapshots))),
        };
        inner
            .channels
            .entry(key.to_string())
            .or_insert_with(|| watch::channel(current).0)
            .subscribe()
    }

    /// A stream of node `node` (fronting endpoint `endpoint`) opened.
    pub fn connected(&self, node: &str, endpoint: &str) {
        let mut inner = self.lock();
        let state = inner.nodes.entry(node.to_string()).or_default();
        state.endpoint = endpoint.to_string();
        state.streams += 1;
    }

    /// A stream of node `node` closed.
    pub fn disconnected(&self, node: &str) {
        if let Some(state) = self.lock().nodes.get_mut(node) {
            state.streams = state.streams.saturating_sub(1);
        }
    }

    /// `resources` of `type_url` were sent to `node`; each is pending until acked or rejected.
    pub fn sent(&self, node: &str, type_url: &str, resources: &[&Resource]) {
        self.update(node, type_url, resources.iter().map(|r| (&r.name, &r.version)), |s, v| {
            s.pushes += 1;
            s.pending = Some(v.clone());
        });
    }

    /// `node` accepted the response that carried these resources.
    pub fn acked(&self, node: &str, type_url: &str, resources: &[(String, String)]) {
        self.update(node, type_url, resources.iter().map(|(n, v)| (n, v)), |s, v| {
            if s.pending.as_ref() == Some(v) {
                s.pending = None;
            }
            s.acked = Some(v.clone());
        });
    }

    /// `node` rejected the response that carried these resources, saying `message`.
    pub fn nacked(
        &self,
        node: &str,
        type_url: &str,
        resources: &[(String, String)],
        message: &str,
    ) {
        let at_unix_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.update(node, type_url, resources.iter().map(|(n, v)| (n, v)), |s, v| {
            if s.pending.as_ref() == Some(v) {
                s.pending = None;
            }
            s.nack =
                Some(NackInfo { version: v.clone(), message: message.to_string(), at_unix_ms });
        });
    }

    /// Whether `node` rejected exactly this version of the resource last time it got it: such a
    /// version is never sent again (it would only be rejected again, in a loop).
    pub fn rejected(&self, node: &str, type_url: &str, resource: &Resource) -> bool {
        self.lock()
            .nodes
            .get(node)
            .and_then(|n| n.resources.get(&(type_url.to_string(), resource.name.clone())))
            .and_then(|s| s.nack.as_ref())
            .is_some_and(|nack| nack.version == resource.version)
    }

    fn update<'a>(
        &self,
        node: &str,
        type_url: &str,
        resources: impl Iterator<Item = (&'a String, &'a String)>,
        apply: impl Fn(&mut ResourceState, &String),
    ) {
        let mut inner = self.lock();
        let state = inner.nodes.entry(node.to_string()).or_default();
        for (name, version) in resources {
            apply(
                state.resources.entry((type_url.to_string(), name.clone())).or_default(),
                version,
            );
        }
    }

    /// Every node seen since the server started, with what it has.
    pub fn status(&self) -> Vec<NodeStatus> {
        let inner = self.lock();
        inner
            .nodes
            .iter()
            .map(|(node, state)| {
                let current = inner.snapshots.get(&state.endpoint);
                let error = match current {
                    Some(_) => None,
                    None => Some(unknown(&state.endpoint, &known_keys(&inner.snapshots))),
                };
                let resources = state
                    .resources
                    .iter()
                    .map(|((type_url, name), s)| ResourceStatus {
                        type_url: type_url.clone(),
                        name: name.clone(),
                        current: current
                            .and_then(|c| c.resources.get(type_url))
                            .and_then(|r| r.get(name))
                            .map(|r| r.version.clone()),
                        pushes: s.pushes,
                        acked: s.acked.clone(),
                        pending: s.pending.clone(),
                        last_nack: s.nack.clone(),
                    })
                    .collect();
                NodeStatus {
                    node: node.clone(),
                    endpoint: state.endpoint.clone(),
                    connected: state.streams > 0,
                    error,
                    resources,
                }
            })
            .collect()
    }
}

/// The endpoint keys a node may use, for error messages (qualified names only: `ns/name`).
fn known_keys(snapshots: &BTreeMap<String, Arc<Snapshot>>) -> String {
    let qualified: Vec<&str> =
        snapshots.keys().map(String::as_str).filter(|k| k.contains('/')).collect();
    qualified.join(", ")
}

fn unknown(key: &str, known: &str) -> String {
    format!(
        "no configuration for endpoint {key:?}: not in the inventory, or an ambiguous bare name \
         (known: {known}); set the Envoy node id or node.metadata[\"l7gate.endpoint\"] to one of them"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

    fn snapshot(body: &str) -> Arc<Snapshot> {
        let value = body.as_bytes().to_vec();
        let resource = Resource {
            name: "l7gate".into(),
            version: crate::ecds::version(&value),
            body: Any { type_url: T.into(), value },
        };
        let mut resources = BTreeMap::new();
        resources.insert(T.to_string(), BTreeMap::from([("l7gate".to_string(), resource)]));
        Arc::new(Snapshot { resources })
    }

    fn set(pairs: &[(&str, &Arc<Snapshot>)]) -> BTreeMap<String, Arc<Snapshot>> {
        pairs.iter().map(|(k, s)| (k.to_string(), Arc::clone(s))).collect()
    }

    fn resource_of(s: &Snapshot) -> Resource {
        s.select(T, &["l7gate".to_string()])[0].clone()
    }

    #[test]
    fn publish_notifies_only_the_endpoints_whose_snapshot_changed() {
        let cache = Cache::new();
        let (a1, b1, a2) = (snapshot("a1"), snapshot("b1"), snapshot("a2"));
        cache.publish(set(&[("ns/a", &a1), ("ns/b", &b1)]));
        let mut rx_a = cache.subscribe("ns/a");
        let rx_b = cache.subscribe("ns/b");
        assert_eq!(rx_a.borrow_and_update().as_ref().ok(), Some(&a1));

        // An equal snapshot (new Arc, same content) is not a change.
        let changed = cache.publish(set(&[("ns/a", &snapshot("a1")), ("ns/b", &b1)]));
        assert!(changed.is_empty(), "{changed:?}");
        assert!(!rx_a.has_changed().unwrap() && !rx_b.has_changed().unwrap());

        let changed = cache.publish(set(&[("ns/a", &a2), ("ns/b", &b1)]));
        assert_eq!(changed, vec!["ns/a".to_string()]);
        assert!(rx_a.has_changed().unwrap());
        assert!(!rx_b.has_changed().unwrap(), "b's stream must not be woken");
        assert_eq!(rx_a.borrow_and_update().as_ref().ok(), Some(&a2));
    }

    #[test]
    fn a_receiver_nobody_reads_never_blocks_publishing_to_others() {
        let cache = Cache::new();
        let _stuck = cache.subscribe("ns/a"); // never read
        let mut rx_b = cache.subscribe("ns/b");
        for i in 0..1000 {
            cache.publish(set(&[
                ("ns/a", &snapshot(&format!("a{i}"))),
                ("ns/b", &snapshot(&format!("b{i}"))),
            ]));
        }
        assert_eq!(rx_b.borrow_and_update().as_ref().ok(), Some(&snapshot("b999")));
    }

    #[test]
    fn unknown_endpoints_get_an_error_naming_the_known_ones() {
        let cache = Cache::new();
        cache.publish(set(&[("ns/a", &snapshot("a")), ("a", &snapshot("a"))]));
        let rx = cache.subscribe("nope");
        let err = rx.borrow().clone().expect_err("unknown endpoint");
        assert!(err.contains("\"nope\"") && err.contains("known: ns/a"), "{err}");
        cache.connected("envoy-1", "nope");
        let status = cache.status();
        assert_eq!(status[0].error.as_deref(), Some(err.as_str()));
        // It becomes known later: the waiting stream is notified.
        let mut rx = rx;
        cache.publish(set(&[("ns/a", &snapshot("a")), ("nope", &snapshot("n"))]));
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow_and_update().is_ok());
    }

    #[test]
    fn ack_and_nack_bookkeeping_per_node_and_resource() {
        let cache = Cache::new();
        let (good, bad) = (snapshot("good"), snapshot("bad"));
        cache.publish(set(&[("ns/a", &good)]));
        cache.connected("envoy-1", "ns/a");
        cache.connected("envoy-2", "ns/a");
        let r_good = resource_of(&good);
        let r_bad = resource_of(&bad);

        cache.sent("envoy-1", T, &[&r_good]);
        let s = &cache.status()[0];
        assert_eq!(
            (s.resources[0].pending.as_deref(), s.resources[0].acked.as_deref()),
            (Some(&*r_good.version), None)
        );
        cache.acked("envoy-1", T, &[("l7gate".into(), r_good.version.clone())]);

        cache.publish(set(&[("ns/a", &bad)]));
        cache.sent("envoy-1", T, &[&r_bad]);
        cache.nacked(
            "envoy-1",
            T,
            &[("l7gate".into(), r_bad.version.clone())],
            "wasm: cannot load",
        );
        assert!(cache.rejected("envoy-1", T, &r_bad), "the NACKed version must be parked");
        assert!(!cache.rejected("envoy-1", T, &r_good));
        assert!(
            !cache.rejected("envoy-2", T, &r_bad),
            "a NACK from one node says nothing about another"
        );

        let status = cache.status();
        let one = status.iter().find(|n| n.node == "envoy-1").unwrap();
        let r = &one.resources[0];
        assert_eq!(r.acked.as_deref(), Some(&*r_good.version), "last good version stays acked");
        assert_eq!(r.pending, None);
        assert_eq!(r.current.as_deref(), Some(&*r_bad.version));
        let nack = r.last_nack.as_ref().unwrap();
        assert_eq!(
            (nack.version.as_str(), nack.message.as_str()),
            (&*r_bad.version, "wasm: cannot load")
        );
        assert!(one.connected);
        cache.disconnected("envoy-1");
        assert!(!cache.status().iter().find(|n| n.node == "envoy-1").unwrap().connected);
    }

    #[test]
    fn response_version_is_the_resource_version_for_one_resource() {
        let s = snapshot("x");
        let r = resource_of(&s);
        assert_eq!(response_version(&[&r]), r.version);
        let mut other = r.clone();
        other.name = "other".into();
        let both = response_version(&[&r, &other]);
        assert_ne!(both, r.version);
        assert_eq!(both, response_version(&[&r, &other]));
    }
}
