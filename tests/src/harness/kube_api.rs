//! A stand-in for the Kubernetes API server on 127.0.0.1, speaking its wire protocol for what
//! `l7gate serve --kubernetes` uses: list (`GET /api/v1/pods`, `/apis/cilium.io/v2/...`, one
//! page, with the collection's `resourceVersion`; built-in types' items without apiVersion and
//! kind), watch (`?watch=true&resourceVersion=N`: a
//! chunked stream of JSON events: every recorded event after N, then live ones; a `BOOKMARK` at
//! the start), and merge patches of a policy's `status` subresource (applied, answered with the
//! object, and streamed as `MODIFIED`, as the real server does). The test drives it: objects
//! applied and deleted, watches expired (`ERROR` 410 Gone, so the client must relist) or cut
//! (it must reconnect), and reads back every request and status patch.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::harness::background::Background;

/// The collections served: their URL path and the kind of their items.
pub const COLLECTIONS: [(&str, &str); 7] = [
    ("/api/v1/pods", "Pod"),
    ("/api/v1/namespaces", "Namespace"),
    ("/api/v1/nodes", "Node"),
    ("/api/v1/services", "Service"),
    ("/apis/discovery.k8s.io/v1/endpointslices", "EndpointSlice"),
    ("/apis/cilium.io/v2/ciliumnetworkpolicies", "CiliumNetworkPolicy"),
    ("/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies", "CiliumClusterwideNetworkPolicy"),
];

type Body = BoxBody<Bytes, Infallible>;
type Watch = mpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>;

#[derive(Default)]
struct Collection {
    /// Objects by `namespace/name` (cluster-scoped: `name`).
    objects: BTreeMap<String, Value>,
    /// Every event so far: (resourceVersion, event).
    events: Vec<(u64, Value)>,
    watches: Vec<Watch>,
}

#[derive(Default)]
struct State {
    version: u64,
    collections: BTreeMap<String, Collection>,
    /// Every request: `METHOD path?query`.
    requests: Vec<String>,
    /// Status patches: (path, body).
    patches: Vec<(String, Value)>,
}

/// The running stand-in; stops when dropped.
pub struct KubeApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _server: Background,
}

fn key(object: &Value) -> String {
    let meta = &object["metadata"];
    match meta["namespace"].as_str() {
        Some(ns) => format!("{ns}/{}", meta["name"].as_str().unwrap_or_default()),
        None => meta["name"].as_str().unwrap_or_default().to_string(),
    }
}

fn frame(event: &Value) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(Bytes::from(format!("{event}\n"))))
}

impl State {
    /// Records `object` (given a new resourceVersion) and streams the event to open watches.
    fn change(&mut self, collection: &str, kind: &str, mut object: Value) -> Value {
        self.version += 1;
        let version = self.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let c = self.collections.entry(collection.to_string()).or_default();
        let k = key(&object);
        let event = match kind {
            "DELETED" => {
                c.objects.remove(&k);
                json!({"type": "DELETED", "object": object})
            }
            _ => {
                let kind = if c.objects.insert(k, object.clone()).is_some() {
                    "MODIFIED"
                } else {
                    "ADDED"
                };
                json!({"type": kind, "object": object})
            }
        };
        c.events.push((version, event.clone()));
        c.watches.retain(|w| w.send(frame(&event)).is_ok());
        object
    }
}

impl KubeApi {
    pub fn start() -> std::io::Result<KubeApi> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let server = Background::spawn("kube-api".into(), {
            let state = Arc::clone(&state);
            move |stop| serve(listener, state, stop)
        })?;
        Ok(KubeApi { addr, state, _server: server })
    }

    /// A kubeconfig for this server (plain HTTP, no credentials), to hand over as $KUBECONFIG.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: \"http://{}\"}}\nusers:\n- name: test\n  user: {{}}\ncontexts:\n- name: test\n  context: {{cluster: test, user: test}}\ncurrent-context: test\n",
            self.addr
        )
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates or replaces an object of `collection` (a path of [`COLLECTIONS`]).
    pub fn apply(&self, collection: &str, object: Value) {
        self.state().change(collection, "APPLIED", object);
    }

    /// Deletes an object (by its `namespace/name` or `name`).
    pub fn delete(&self, collection: &str, key: &str) {
        let mut state = self.state();
        let object = state.collections.get(collection).and_then(|c| c.objects.get(key)).cloned();
        if let Some(object) = object {
            state.change(collection, "DELETED", object);
        }
    }

    /// Ends every open watch with `ERROR` 410 Gone and forgets the recorded events: a client
    /// must list again.
    pub fn expire_watches(&self) {
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}});
        for c in self.state().collections.values_mut() {
            for w in c.watches.drain(..) {
                let _ = w.send(frame(&gone));
            }
            c.events.clear();
        }
    }

    /// Closes every open watch stream (the client reconnects from its last resourceVersion).
    pub fn cut_watches(&self) {
        for c in self.state().collections.values_mut() {
            c.watches.clear();
        }
    }

    /// Every request so far, `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }

    /// Every status patch so far: (path, body).
    pub fn patches(&self) -> Vec<(String, Value)> {
        self.state().patches.clone()
    }

    /// The object as the server has it now.
    pub fn object(&self, collection: &str, key: &str) -> Option<Value> {
        self.state().collections.get(collection).and_then(|c| c.objects.get(key)).cloned()
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<Mutex<State>>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(handle(req, &state).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
}

fn json_response(status: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn not_found(what: &str) -> Response<Body> {
    json_response(
        404,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": what}),
    )
}

async fn handle(req: Request<Incoming>, state: &Mutex<State>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let method = req.method().clone();
    state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .requests
        .push(format!("{method} {}", req.uri()));
    if method == hyper::Method::PATCH {
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return patch_status(&path, serde_json::from_slice(&body).unwrap_or(Value::Null), state);
    }
    let Some((collection, kind)) = COLLECTIONS.iter().find(|(c, _)| *c == path) else {
        return not_found(&path);
    };
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let version = state.version;
    let c = state.collections.entry(collection.to_string()).or_default();
    if query.get("watch").map(String::as_str) != Some("true") {
        // As the real server does, items of a built-in type's list carry no apiVersion and kind.
        let builtin = !collection.starts_with("/apis/cilium.io/");
        let items: Vec<Value> = c
            .objects
            .values()
            .cloned()
            .map(|mut o| {
                if let (true, Some(m)) = (builtin, o.as_object_mut()) {
                    m.remove("kind");
                    m.remove("apiVersion");
                }
                o
            })
            .collect();
        return json_response(
            200,
            &json!({"kind": format!("{kind}List"), "apiVersion": "v1",
            "metadata": {"resourceVersion": version.to_string()}, "items": items}),
        );
    }
    let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let (tx, rx) = mpsc::unbounded_channel();
    // `/api/v1/pods` → `v1`, `/apis/cilium.io/v2/...` → `cilium.io/v2`.
    let api_version = match collection.strip_prefix("/apis/") {
        Some(rest) => rest.rsplit_once('/').map_or(rest, |(group_version, _)| group_version),
        None => "v1",
    };
    let bookmark = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version,
        "metadata": {"resourceVersion": version.to_string()}}});
    for (_, event) in c.events.iter().filter(|(v, _)| *v > from) {
        let _ = tx.send(frame(event));
    }
    let _ = tx.send(frame(&bookmark));
    c.watches.push(tx);
    let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// `PATCH <collection>/namespaces/<ns>/<plural>/<name>/status` (or cluster-scoped), a JSON merge
/// patch of `status`: applied to the stored object, which is returned and streamed.
fn patch_status(path: &str, body: Value, state: &Mutex<State>) -> Response<Body> {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.patches.push((path.to_string(), body.clone()));
    let Some(rest) =
        path.strip_prefix("/apis/cilium.io/v2/").and_then(|p| p.strip_suffix("/status"))
    else {
        return not_found(path);
    };
    let (collection, key) = match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["namespaces", ns, plural, name] => {
            (format!("/apis/cilium.io/v2/{plural}"), format!("{ns}/{name}"))
        }
        [plural, name] => (format!("/apis/cilium.io/v2/{plural}"), name.to_string()),
        _ => return not_found(path),
    };
    let Some(mut object) =
        state.collections.get(&collection).and_then(|c| c.objects.get(&key)).cloned()
    else {
        return not_found(path);
    };
    object["status"] = body["status"].clone();
    let object = state.change(&collection, "APPLIED", object);
    json_response(200, &object)
}
