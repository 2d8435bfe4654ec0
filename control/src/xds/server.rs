//! The ADS gRPC service (State-of-the-World `StreamAggregatedResources`; delta is answered
//! `Unimplemented`, and Envoy is configured for SotW). Speaks the protocol only; what to serve
//! comes from the [`Cache`].
//!
//! Per stream: the node comes from the first request; its endpoint key is
//! `node.metadata["l7gate.endpoint"]` or else the node id. For each type URL the stream keeps the
//! subscribed names and the last response (nonce, resources). A request whose `response_nonce` is
//! not the last one sent is stale and ignored; one with `error_detail` is a NACK (recorded, and
//! that version is parked until the snapshot changes); otherwise it is an ACK of the last
//! response. New or changed subscriptions are answered at once; a snapshot change is pushed to
//! every subscribed type whose content changed.

use std::collections::BTreeMap;
#[cfg(test)]
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::value::Kind;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use super::authz::{self, Peer};
use super::cache::{response_version, Cache, Published, Resource};

/// The node metadata key that names the endpoint when the node id does not.
pub const ENDPOINT_METADATA_KEY: &str = "l7gate.endpoint";

/// Responses queued per stream before the stream's task waits for Envoy to read.
const STREAM_BUFFER: usize = 16;

/// The ADS service over a cache.
pub struct Ads {
    cache: Arc<Cache>,
    /// Turns true when the server shuts down: every stream then ends (grpc-status OK).
    stopping: watch::Receiver<bool>,
    /// Over mTLS, the trust domain of the SPIFFE IDs that name endpoints (`authz`); `None`
    /// serves plaintext, every endpoint to anyone.
    trust_domain: Option<String>,
}

impl Ads {
    pub fn new(
        cache: Arc<Cache>,
        stopping: watch::Receiver<bool>,
        trust_domain: Option<String>,
    ) -> Ads {
        Ads { cache, stopping, trust_domain }
    }

    /// The tonic service to mount.
    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Ads> {
        AggregatedDiscoveryServiceServer::new(self)
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let address = request.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let peer = match &self.trust_domain {
            None => Peer::Plaintext,
            Some(td) => authz::certified(request.peer_certs().as_deref().map(Vec::as_slice), td),
        };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let cache = Arc::clone(&self.cache);
        let stopping = self.stopping.clone();
        tokio::spawn(run_stream(cache, request.into_inner(), tx, (address, peer), stopping));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaStream>, Status> {
        Err(Status::unimplemented("l7gate serves State-of-the-World ADS only (api_type: GRPC)"))
    }
}

/// The endpoint key a node asks for.
pub fn endpoint_key(node: &Node) -> String {
    node.metadata
        .as_ref()
        .and_then(|m| m.fields.get(ENDPOINT_METADATA_KEY))
        .and_then(|v| match &v.kind {
            Some(Kind::StringValue(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| node.id.clone())
}

/// Protocol state of one type URL on one stream.
#[derive(Default)]
struct Subscription {
    names: Vec<String>,
    /// Nonce of the last response sent (requests echoing another one are stale).
    nonce: String,
    /// Content (name, version) of the last response sent.
    sent: Option<Vec<(String, String)>>,
    /// Content of the last response while Envoy has not answered it.
    awaiting: Option<Vec<(String, String)>>,
}

/// One connected Envoy.
struct StreamState {
    cache: Arc<Cache>,
    node: String,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    subscriptions: BTreeMap<String, Subscription>,
    nonce: u64,
}

async fn run_stream(
    cache: Arc<Cache>,
    mut requests: Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    (peer, identity): (String, Peer),
    mut stopping: watch::Receiver<bool>,
) {
    // The node is only guaranteed on the first request.
    let first = match requests.next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            warn!(peer = %peer, error = %e, "stream failed before its first request");
            return;
        }
        None => return,
    };
    let Some(node) = first.node.clone() else {
        let _ = tx
            .send(Err(Status::invalid_argument("the first DiscoveryRequest must carry the node")))
            .await;
        return;
    };
    let key = match authz::authorize(&identity, &endpoint_key(&node)) {
        Ok(key) => key,
        Err(e) => {
            warn!(node = %node.id, peer = %peer, certificate = ?identity, error = %e, "stream refused");
            let _ = tx.send(Err(Status::permission_denied(e))).await;
            return;
        }
    };
    let mut snapshots = cache.subscribe(&key);
    cache.connected(&node.id, &key);
    info!(node = %node.id, endpoint = %key, peer = %peer, "stream connected");
    if let Err(e) = &*snapshots.borrow_and_update() {
        warn!(node = %node.id, endpoint = %key, error = %e, "node gets no configuration");
    }
    let mut state = StreamState {
        cache: Arc::clone(&cache),
        node: node.id.clone(),
        tx,
        subscriptions: BTreeMap::new(),
        nonce: 0,
    };

    let mut next = Some(first);
    let reason = loop {
        if let Some(request) = next.take() {
            let current = snapshots.borrow().clone();
            if !state.on_request(request, &current).await {
                break "response channel closed".to_string();
            }
        }
        tokio::select! {
            _ = stop_requested(&mut stopping) => break "control plane shutting down".to_string(),
            request = requests.next() => match request {
                Some(Ok(r)) => next = Some(r),
                Some(Err(e)) => break e.to_string(),
                None => break "closed by Envoy".to_string(),
            },
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break "cache dropped".to_string();
                }
                let current = snapshots.borrow_and_update().clone();
                if let Err(e) = &current {
                    warn!(node = %state.node, endpoint = %key, error = %e, "node gets no configuration");
                }
                if !state.push_all(&current).await {
                    break "response channel closed".to_string();
                }
            }
        }
    };
    cache.disconnected(&node.id);
    info!(node = %node.id, endpoint = %key, reason = %reason, "stream disconnected");
}

/// Resolves once `stopping` turns true; never if its sender is gone without that.
pub(crate) async fn stop_requested(stopping: &mut watch::Receiver<bool>) {
    if stopping.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl StreamState {
    /// Handles one request; false when the stream is gone.
    async fn on_request(&mut self, request: DiscoveryRequest, current: &Published) -> bool {
        let type_url = request.type_url.clone();
        let sub = self.subscriptions.entry(type_url.clone()).or_default();
        if !request.response_nonce.is_empty() {
            if request.response_nonce != sub.nonce {
                return true; // stale: answers a response that has since been superseded
            }
            if let Some(resources) = sub.awaiting.take() {
                match &request.error_detail {
                    Some(error) => {
                        warn!(node = %self.node, type_url = %type_url, version = %versions(&resources),
                            nonce = %sub.nonce, error = ?error.message, "NACK");
                        self.cache.nacked(&self.node, &type_url, &resources, &error.message);
                    }
                    None => {
                        info!(node = %self.node, type_url = %type_url, version = %request.version_info,
                            nonce = %sub.nonce, "ACK");
                        self.cache.acked(&self.node, &type_url, &resources);
                    }
                }
            }
        }
        let mut names = request.resource_names.clone();
        names.sort();
        names.dedup();
        let renewed = names != sub.names;
        sub.names = names;
        // Answer a first request and any change of subscription, even with content the stream
        // sent before (Envoy needs an answer for newly requested names).
        if renewed || sub.sent.is_none() {
            return self.push(&type_url, current, true).await;
        }
        true
    }

    /// Pushes changed content of every subscribed type.
    async fn push_all(&mut self, current: &Published) -> bool {
        let types: Vec<String> = self.subscriptions.keys().cloned().collect();
        for type_url in types {
            if !self.push(&type_url, current, false).await {
                return false;
            }
        }
        true
    }

    /// Sends the subscribed resources of `type_url` if there are any, they differ from what the
    /// stream last sent (or `force`), and the node did not reject exactly this content.
    async fn push(&mut self, type_url: &str, current: &Published, force: bool) -> bool {
        let Ok(snapshot) = current else { return true };
        let Some(sub) = self.subscriptions.get_mut(type_url) else { return true };
        let selected: Vec<&Resource> = snapshot.select(type_url, &sub.names);
        if selected.is_empty() {
            return true;
        }
        let content: Vec<(String, String)> =
            selected.iter().map(|r| (r.name.clone(), r.version.clone())).collect();
        if sub.sent.as_ref() == Some(&content) && !force {
            return true;
        }
        if selected.iter().any(|r| self.cache.rejected(&self.node, type_url, r)) {
            return true; // parked until the snapshot changes
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let version = response_version(&selected);
        let response = DiscoveryResponse {
            version_info: version.clone(),
            resources: selected.iter().map(|r| r.body.clone()).collect(),
            type_url: type_url.to_string(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        self.cache.sent(&self.node, type_url, &selected);
        sub.nonce = nonce.clone();
        sub.awaiting = Some(content.clone());
        sub.sent = Some(content);
        info!(node = %self.node, type_url = %type_url, version = %version, nonce = %nonce, "push");
        self.tx.send(Ok(response)).await.is_ok()
    }
}

fn versions(resources: &[(String, String)]) -> String {
    resources.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    //! The protocol against an in-process server on 127.0.0.1:0 and a scripted client stream.

    use std::collections::BTreeMap;
    use std::time::Duration;

    use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
    use envoy_types::pb::google::rpc;
    use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

    use super::*;
    use crate::xds::snapshot::snapshot_of;

    const T: &str = crate::ecds::TYPED_EXTENSION_CONFIG_TYPE;

    fn snapshots(configs: &[(&str, &str)]) -> BTreeMap<String, Arc<crate::xds::cache::Snapshot>> {
        configs
            .iter()
            .map(|(k, c)| {
                (
                    k.to_string(),
                    Arc::new(snapshot_of(c, Path::new("/w.wasm"), &[crate::ecds::Role::Ingress])),
                )
            })
            .collect()
    }

    struct Client {
        tx: mpsc::Sender<DiscoveryRequest>,
        rx: Streaming<DiscoveryResponse>,
    }

    impl Client {
        async fn connect(cache: &Arc<Cache>, node: &str) -> Client {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let service = Ads::new(Arc::clone(cache), watch::channel(false).1, None).into_service();
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(TcpListenerStream::new(listener)),
            );
            let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
                .await
                .expect("connect");
            let (tx, requests) = mpsc::channel(8);
            tx.send(DiscoveryRequest {
                node: Some(Node { id: node.into(), ..Default::default() }),
                type_url: T.into(),
                resource_names: vec!["l7gate".into()],
                ..Default::default()
            })
            .await
            .expect("first request");
            let rx = client
                .stream_aggregated_resources(ReceiverStream::new(requests))
                .await
                .expect("stream")
                .into_inner();
            Client { tx, rx }
        }

        async fn recv(&mut self) -> DiscoveryResponse {
            tokio::time::timeout(Duration::from_secs(10), self.rx.message())
                .await
                .expect("a response")
                .expect("stream ok")
                .expect("not closed")
        }

        async fn answer(&self, to: &DiscoveryResponse, error: Option<&str>) {
            let request = DiscoveryRequest {
                version_info: if error.is_some() { String::new() } else { to.version_info.clone() },
                type_url: T.into(),
                resource_names: vec!["l7gate".into()],
                response_nonce: to.nonce.clone(),
                error_detail: error.map(|m| rpc::Status {
                    code: 3,
                    message: m.into(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            self.tx.send(request).await.expect("send");
        }
    }

    fn resubscribe(names: &[&str], nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: T.into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            response_nonce: nonce.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn acks_nacks_stale_nonces_and_no_resend_of_a_rejected_version() {
        let cache = Arc::new(Cache::new());
        cache.publish(snapshots(&[("ns/a", "{\"v\":1}")]));
        let mut envoy = Client::connect(&cache, "ns/a").await;

        let first = envoy.recv().await;
        assert_eq!((first.type_url.as_str(), first.resources.len()), (T, 1));
        envoy.answer(&first, None).await;
        let acked = (cache.clone(), first.version_info.clone());
        wait(move || acked.0.status()[0].resources[0].acked.as_ref() == Some(&acked.1)).await;

        // A new version is pushed. A stale request (echoing the first nonce) arrives before the
        // Envoy's answer: it must not count as an ACK of the new version. Then the Envoy rejects it.
        cache.publish(snapshots(&[("ns/a", "{\"v\":2}")]));
        let second = envoy.recv().await;
        assert_ne!(second.version_info, first.version_info);
        envoy.answer(&first, None).await;
        envoy.answer(&second, Some("on_configure refused")).await;
        let nacked = cache.clone();
        wait(move || nacked.status()[0].resources[0].last_nack.is_some()).await;
        let r = cache.status()[0].resources[0].clone();
        assert_eq!(
            r.acked.as_deref(),
            Some(first.version_info.as_str()),
            "the stale request was taken as an ACK"
        );
        assert_eq!(
            r.last_nack.map(|n| (n.version, n.message)),
            Some((second.version_info.clone(), "on_configure refused".into()))
        );
        // Re-subscribing does not bring the rejected version back either.
        envoy.tx.send(resubscribe(&["l7gate", "other"], &second.nonce)).await.expect("send");

        // The snapshot changes: the next message is the new version (a resend of the rejected
        // one would come first), and it is acked.
        cache.publish(snapshots(&[("ns/a", "{\"v\":3}")]));
        let third = envoy.recv().await;
        assert!(
            third.version_info != second.version_info && third.version_info != first.version_info
        );
        assert_eq!(cache.status()[0].resources[0].pushes, 3, "one push per version");
        envoy.answer(&third, None).await;
        let acked = (cache.clone(), third.version_info.clone());
        wait(move || acked.0.status()[0].resources[0].acked.as_ref() == Some(&acked.1)).await;
    }

    /// Polls until `done`; a generous bound guards against hanging.
    async fn wait(done: impl Fn() -> bool) {
        let poll = async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), poll).await.expect("state reached");
    }

    #[test]
    fn the_endpoint_key_is_the_metadata_entry_or_else_the_node_id() {
        use envoy_types::pb::google::protobuf::{Struct, Value};
        let mut node = Node { id: "sidecar-7".into(), ..Default::default() };
        assert_eq!(endpoint_key(&node), "sidecar-7");
        let value = Value { kind: Some(Kind::StringValue("shop/inventory-api".into())) };
        node.metadata =
            Some(Struct { fields: [(ENDPOINT_METADATA_KEY.to_string(), value)].into() });
        assert_eq!(endpoint_key(&node), "shop/inventory-api");
    }
}
