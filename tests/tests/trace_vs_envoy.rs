//! `l7gate trace` against the data plane, path by path: a few hundred generated tricky paths
//! (dot segments plain and encoded, encoded slashes and backslashes, doubled slashes, `;`
//! parameters, broken and nested escapes, characters Envoy escapes, raw and encoded UTF-8,
//! queries and fragments) are sent from frontend to the seed cluster's inventory-api sidecar (a
//! real Envoy, the real filter; the policy allows `GET /api/inventory/.*`) and given to `trace`.
//! For each one, what Envoy did must be what trace said: the same 400/404 of its own, the same
//! 307 `Location`, or the same verdict with the application receiving exactly the path trace
//! judged. HTTP/1.1 is written by hand (the target byte for byte); a path the `http` crate
//! takes unchanged is also sent over HTTP/2.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use l7gate::envoy_path::Version;
use l7gate::trace::{trace, Query, Trace};
use l7gate_e2e::harness::client::{self, Protocol, Request};
use l7gate_e2e::harness::cluster::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FRONTEND: &str = "127.0.0.2";
const AUTHORITY: &str = "inventory-api:8080";

/// Segments the generator draws from.
const SEGMENTS: &[&str] = &[
    "api",
    "inventory",
    "item1",
    "admin",
    ".",
    "..",
    "%2e",
    "%2E",
    "%2e%2e",
    ".%2E",
    "%2e.",
    "...",
    "..;",
    ".;",
    "%2e%2e;",
    "..%3b",
    "a.b",
    "",
    "%69nventory",
    "%41%7e%5F",
    "%3b",
    "%3F",
    "%25",
    "%252e%252e",
    "%",
    "%zz",
    "%4",
    "%%30",
    "%%30%30",
    "%%3030",
    "caf%C3%A9",
    "caf\u{e9}",
    "\u{ff0e}\u{ff0e}",
    "x%2Fy",
    "%2f",
    "x%5cy",
    "%5C..",
    "x\\y",
    "..\\",
    "~",
    "a\"b",
    "{x}",
    "[x]",
    "a|b",
    "a^b",
    "`",
    "<>",
    "%00",
    "a%7F",
    "*",
    "@",
    ":",
    "!$&'()+,=",
];
/// What may end a generated path.
const ENDINGS: &[&str] = &["", "", "", "/", "?q=/../admin", "?x=%2F&y=..", "?", "#top", "/?a#b"];
/// Hand-picked paths, kept whatever the generator draws.
const FIXED: &[&str] = &[
    "/api/inventory/item1",
    "/api/inventory/../admin",
    "//api/inventory/x",
    "/api/inventory%2Fx",
    "/api/inventory/%2e%2e;/admin",
    "/api/inventory/x/..%2F..%2Fadmin",
    "/api//inventory//x",
    "//",
    "/.",
    "/..",
    "/api/inventory/..",
    "/api/inventory/",
    "api/inventory/x",
    "*",
    "/api/inventory/x#frag",
];
/// Generated paths, besides [`FIXED`].
const GENERATED: usize = 320;

/// A small deterministic generator (xorshift): the same corpus every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % u64::try_from(n).unwrap_or(1)).unwrap_or(0)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from.get(self.below(from.len())).copied().unwrap_or_default()
    }
}

fn corpus() -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut paths: Vec<String> = FIXED.iter().map(|p| p.to_string()).collect();
    while paths.len() < FIXED.len() + GENERATED {
        // Most paths start under the allowed prefix, so the policy's verdict varies too.
        let mut segments: Vec<&str> = match rng.below(3) {
            0 => Vec::new(),
            _ => vec!["api", "inventory"],
        };
        for _ in 0..=rng.below(4) {
            segments.push(rng.pick(SEGMENTS));
        }
        let separator = if rng.below(6) == 0 { "//" } else { "/" };
        let path = format!("/{}{}", segments.join(separator), rng.pick(ENDINGS));
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    paths
}

/// What the sidecar did with one request.
#[derive(Debug)]
struct Observed {
    status: u16,
    location: Option<String>,
    /// What the application received, if anything.
    received: Option<String>,
}

async fn raw_get(to: SocketAddr, path: &str) -> Result<client::Response, String> {
    let from: IpAddr = FRONTEND.parse().map_err(|e| format!("{e}"))?;
    let mut stream = client::connect(from, to).await.map_err(|e| e.to_string())?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: {AUTHORITY}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
    // Read until the response is complete: Envoy keeps the connection open for a second after
    // its own replies (delayed close), so reading to the end would wait for that.
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !complete(&raw) {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        match read.map_err(|_| "no answer in 5 s".to_string())?.map_err(|e| e.to_string())? {
            0 => break,
            n => raw.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
    }
    client::parse_response(&raw)
}

/// Whether `raw` holds a whole response with a `Content-Length` body.
fn complete(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
    });
    length.is_some_and(|n| body.len() >= n)
}

async fn h2_get(to: SocketAddr, path: &str) -> Result<client::Response, String> {
    let from: IpAddr = FRONTEND.parse().map_err(|e| format!("{e}"))?;
    let request = Request { from, to, authority: AUTHORITY, method: "GET", path };
    client::send(Protocol::Http2, &request).await.map_err(|e| e.to_string())
}

/// Whether a path reaches Envoy over HTTP/2 exactly as written (the `http` crate refuses or
/// rewrites some).
fn h2_sendable(path: &str) -> bool {
    path.starts_with('/')
        && path.parse::<http::uri::PathAndQuery>().is_ok_and(|p| p.as_str() == path)
}

async fn observe(cluster: &Cluster, path: &str, protocol: Protocol) -> Result<Observed, String> {
    let sidecar = cluster.sidecar("inventory-api").ok_or("no inventory-api sidecar")?;
    let before = sidecar.upstream.count();
    let to = sidecar.envoy.listener();
    let response = match protocol {
        Protocol::Http2 => h2_get(to, path).await?,
        _ => raw_get(to, path).await?,
    };
    let seen = sidecar.upstream.seen();
    let received = match seen.len() - before {
        0 => None,
        1 => seen.last().map(|s| s.path.clone()),
        n => return Err(format!("the application received {n} requests for one")),
    };
    let location = response.header("location").map(str::to_string);
    Ok(Observed { status: response.status, location, received })
}

fn traced(cluster: &l7gate::compile::Cluster, path: &str, protocol: Protocol) -> Trace {
    let version = match protocol {
        Protocol::Http2 => Version::Http2,
        _ => Version::Http1,
    };
    let query = Query {
        version,
        from: "frontend".into(),
        to: "inventory-api".into(),
        port: 8080,
        host: Some(AUTHORITY.into()),
        path: Some(path.into()),
        ..Query::default()
    };
    trace(cluster, &query).unwrap_or_else(|e| panic!("trace {path:?}: {e}"))
}

/// Why the sidecar's answer disagrees with the trace, if it does.
fn disagreement(t: &Trace, seen: &Observed) -> Option<String> {
    let envoy = t.envoy.as_ref()?;
    let judged = envoy.path.as_deref();
    let agrees = match (envoy.action, t.verdict) {
        ("reject", _) => envoy.status == Some(seen.status) && seen.received.is_none(),
        ("redirect", _) => {
            seen.status == 307 && seen.location.as_deref() == judged && seen.received.is_none()
        }
        (_, "allow") => seen.status == 200 && seen.received.as_deref() == judged,
        (_, "deny") => seen.status == 403 && seen.received.is_none(),
        _ => false,
    };
    (!agrees).then(|| {
        format!(
            "trace: {} {} {:?} ({}); sidecar: {seen:?}",
            envoy.action, t.verdict, judged, envoy.explanation
        )
    })
}

#[tokio::test]
async fn trace_judges_every_path_as_the_sidecar_does() {
    let cluster = Cluster::start_seed().unwrap_or_else(|e| panic!("{e}"));
    let manifests = &cluster.manifests;
    let loaded = l7gate::load(&manifests.join("policies"), &manifests.join("endpoints.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let paths = corpus();
    let (mut failures, mut tally) = (Vec::new(), std::collections::BTreeMap::new());
    for path in &paths {
        let protocols: &[Protocol] = if h2_sendable(path) {
            &[Protocol::RawHttp1, Protocol::Http2]
        } else {
            &[Protocol::RawHttp1]
        };
        let t = traced(&loaded.cluster, path, Protocol::RawHttp1);
        for &protocol in protocols {
            let t = traced(&loaded.cluster, path, protocol);
            let seen = observe(&cluster, path, protocol).await.unwrap_or_else(|e| panic!("{e}"));
            if let Some(why) = disagreement(&t, &seen) {
                failures.push(format!("{protocol} {path:?}: {why}"));
            }
        }
        // A redirect's target is judged by trace as the request that follows it.
        if let (Some("redirect"), Some(next)) =
            (t.envoy.as_ref().map(|e| e.action), t.envoy.as_ref().and_then(|e| e.path.as_deref()))
        {
            let seen =
                observe(&cluster, next, Protocol::RawHttp1).await.unwrap_or_else(|e| panic!("{e}"));
            let followed = traced(&loaded.cluster, next, Protocol::RawHttp1);
            if followed.verdict != t.verdict || disagreement(&followed, &seen).is_some() {
                failures.push(format!(
                    "{path:?} redirected to {next:?}: trace {}, sidecar {seen:?}",
                    t.verdict
                ));
            }
        }
        let action = t.envoy.as_ref().map_or("none", |e| e.action);
        *tally.entry(format!("{action}/{}", t.verdict)).or_insert(0) += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {} paths judged differently by trace and the sidecar:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
    eprintln!("{} paths, trace's outcomes: {tally:?}", paths.len());
    // The corpus exercises every outcome, or it proves little.
    for outcome in
        ["forward/allow", "forward/deny", "redirect/allow", "redirect/deny", "reject/reject"]
    {
        assert!(tally.get(outcome).is_some_and(|n| *n >= 5), "too few {outcome} in {tally:?}");
    }
}
