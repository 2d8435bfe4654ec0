//! A real HTTP server standing in for a workload's application: listens on 127.0.0.1:0, speaks
//! HTTP/1.1 and h2c (prior knowledge), answers every request `200 <name> saw <METHOD> <path>`,
//! and records what it received so a test can prove a denied request never reached it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::oneshot;

use crate::harness::background::Background;

/// One request as the upstream received it (after Envoy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// The request target as received (path and query): shows Envoy's normalisation.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`: the protocol Envoy used upstream.
    pub version: String,
    /// The request's header names (lower-case), in order.
    pub header_names: Vec<String>,
    /// Every header value as received (name lower-case; values not UTF-8 lossily), in order.
    pub headers: Vec<(String, String)>,
}

/// A running upstream; stops when dropped.
pub struct Upstream {
    name: String,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _server: Background,
}

impl Upstream {
    /// Starts an upstream called `name` on its own thread and runtime, so it serves whatever the
    /// caller does (sync or async).
    pub fn start(name: &str) -> std::io::Result<Upstream> {
        Upstream::start_at(name, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Like [`Upstream::start`], on a given address (e.g. a name's address on port 80).
    pub fn start_at(name: &str, addr: SocketAddr) -> std::io::Result<Upstream> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = Background::spawn(format!("upstream-{name}"), {
            let name = name.to_string();
            let seen = Arc::clone(&seen);
            move |stop| serve(listener, name, seen, stop)
        })?;
        Ok(Upstream { name: name.to_string(), addr, seen, _server: server })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many requests were received so far.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The body this upstream answers to `method path`.
    pub fn reply_body(name: &str, method: &str, path: &str) -> String {
        format!("{name} saw {method} {path}")
    }
}

async fn serve(
    listener: std::net::TcpListener,
    name: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("upstream {name}: cannot register listener: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let name = name.clone();
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let reply = record(&name, &seen, &req);
                        async move { Ok::<_, Infallible>(reply) }
                    });
                    // A connection error (e.g. Envoy resetting) ends only that connection.
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

fn record(name: &str, seen: &Mutex<Vec<Seen>>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let method = req.method().as_str().to_string();
    let body = Upstream::reply_body(name, &method, &path);
    seen.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
        method,
        path,
        version: format!("{:?}", req.version()),
        header_names: req.headers().keys().map(|k| k.as_str().to_string()).collect(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
    });
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain"));
    response
}

#[cfg(test)]
mod tests {
    use super::Upstream;
    use crate::harness::client::{send, Protocol, Request};

    // The harness's own plumbing, without Envoy: both protocols reach the upstream, which
    // records what it saw.
    #[tokio::test]
    async fn serves_and_records_http1_and_h2c() {
        let app = Upstream::start("echo").unwrap();
        for (protocol, version) in [(Protocol::Http1, "HTTP/1.1"), (Protocol::Http2, "HTTP/2.0")] {
            let req = Request {
                from: "127.0.0.1".parse().unwrap(),
                to: app.addr(),
                authority: "echo",
                method: "PUT",
                path: "/x?y=1",
            };
            let response = send(protocol, &req).await.unwrap();
            assert_eq!((response.status, response.body.as_str()), (200, "echo saw PUT /x?y=1"));
            let seen = app.seen();
            let last = seen.last().unwrap();
            assert_eq!(
                (last.method.as_str(), last.path.as_str(), last.version.as_str()),
                ("PUT", "/x?y=1", version)
            );
        }
        assert_eq!(app.count(), 2);
    }
}
