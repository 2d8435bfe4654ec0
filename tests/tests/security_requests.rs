//! The security suite's request-level corpora, sent to the seed cluster's inventory-api sidecar
//! (a real Envoy running the real filter, in front of the recording test application), where
//! frontend (127.0.0.2) may only `GET /api/inventory/.*`. Each corpus asserts what the
//! application received (method and target byte for byte, and which headers), not only the
//! status code, and each has a well-formed control that must get through (so the corpus can
//! fail):
//!
//! 1. Methods: case, whitespace, encodings, lookalikes and overrides of `GET`, over HTTP/1.1
//!    (hand-written) and HTTP/2; only `GET` itself reaches the application.
//! 2. Identity spoofing: reporting (127.0.0.3, no rule) claiming to be frontend through the
//!    filter's own connection header (every case and repetition) and through every forwarding
//!    header; frontend's own requests reach the application without the connection header.
//! 3. Smuggling (HTTP/1.1, hand-written): Content-Length / Transfer-Encoding conflicts and
//!    obfuscations, bare LF, pipelining, absolute-form targets; a request hidden inside another
//!    never reaches the application unjudged.
//! 4. HTTP/2 framing (frames written by hand, HPACK literals): CONTINUATION-split headers,
//!    duplicate and misplaced pseudo-headers, upper-case and connection-specific headers,
//!    malformed `:path`, several streams on one connection, pseudo-headers in trailers.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use l7gate_e2e::harness::client::{self, Protocol, Request};
use l7gate_e2e::harness::cluster::Cluster;
use l7gate_e2e::harness::upstream::Seen;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FRONTEND: &str = "127.0.0.2";
const REPORTING: &str = "127.0.0.3";
const ALLOWED: &str = "/api/inventory/item1";
/// The filter's connection header (envoy/sidecar.yaml), which the route removes upstream.
const CONNECTION_HEADER: &str = "x-l7gate-connection";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Whether the application may receive this request: exactly what the policy allows.
fn permitted(seen: &Seen) -> bool {
    seen.method == "GET" && seen.path.starts_with("/api/inventory/") && !seen.path.contains("..")
}

/// Writes `bytes` on one connection from `from` and reads until the server closes it or is
/// quiet for a moment; returns what came back.
async fn exchange(from: &str, to: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let Ok(mut stream) = client::connect(ip(from), to).await else { return Vec::new() };
    if stream.write_all(bytes).await.is_err() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_millis(250), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(buf.get(..n).unwrap_or_default()),
            _ => return out,
        }
    }
}

/// Runs `send` for each case and collects the cases after which the application had received
/// anything `permitted` refuses, or (for `must_arrive`) not exactly what was expected.
struct Judge<'c> {
    cluster: &'c Cluster,
    failures: Vec<String>,
    sent: usize,
}

impl<'c> Judge<'c> {
    fn new(cluster: &'c Cluster) -> Judge<'c> {
        Judge { cluster, failures: Vec::new(), sent: 0 }
    }

    fn app(&self) -> Vec<Seen> {
        self.cluster.sidecar("inventory-api").expect("inventory-api").upstream.seen()
    }

    fn to(&self) -> SocketAddr {
        self.cluster.sidecar("inventory-api").expect("inventory-api").envoy.listener()
    }

    /// After `run`, the application received exactly the requests in `expect` (method, target),
    /// in order, each without the connection header.
    async fn case(
        &mut self,
        name: &str,
        expect: &[(&str, &str)],
        run: impl AsyncFnOnce(SocketAddr),
    ) {
        self.case_within(name, expect, true, run).await
    }

    /// [`Judge::case`]; with `exact` false, the application may also receive only a first part
    /// of them (a spelling Envoy may read as the allowed request, or refuse).
    async fn case_within(
        &mut self,
        name: &str,
        expect: &[(&str, &str)],
        exact: bool,
        run: impl AsyncFnOnce(SocketAddr),
    ) {
        self.sent += 1;
        let before = self.app().len();
        run(self.to()).await;
        // The application's record may trail the response by a moment.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let got: Vec<Seen> = self.app().into_iter().skip(before).collect();
        let got_pairs: Vec<(&str, &str)> =
            got.iter().map(|s| (s.method.as_str(), s.path.as_str())).collect();
        let as_expected = if exact {
            got_pairs == expect
        } else {
            got_pairs.len() <= expect.len() && expect.starts_with(&got_pairs)
        };
        if !as_expected
            || got
                .iter()
                .any(|s| !permitted(s) || s.header_names.iter().any(|h| h == CONNECTION_HEADER))
        {
            self.failures
                .push(format!("{name}: the application received {got:?}, want {expect:?}"));
        }
    }

    fn finish(self, corpus: &str) {
        assert!(
            self.failures.is_empty(),
            "{corpus}: {} of {} cases let something reach the application:\n{}",
            self.failures.len(),
            self.sent,
            self.failures.join("\n")
        );
    }
}

fn raw(method: &str, target: &str, headers: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nhost: inventory-api:8080\r\n{headers}connection: close\r\n\r\n")
        .into_bytes()
}

#[tokio::test]
async fn request_corpora_reach_the_application_only_as_allowed() {
    let cluster = Cluster::start_seed().unwrap_or_else(|e| panic!("{e}"));

    // 1. Methods.
    let mut judge = Judge::new(&cluster);
    judge
        .case("control: GET over h1", &[("GET", ALLOWED)], async |to| {
            exchange(FRONTEND, to, &raw("GET", ALLOWED, "")).await;
        })
        .await;
    // Envoy's HTTP/1 parser reads a tab after the method as the separator: the application
    // then receives the GET the filter judged, or nothing.
    judge
        .case_within("h1 method GET<tab>", &[("GET", ALLOWED)], false, async |to| {
            exchange(FRONTEND, to, &raw("GET\t", ALLOWED, "")).await;
        })
        .await;
    for method in [
        "get",
        "Get",
        "gET",
        "G ET",
        "GE",
        "GETS",
        "XGET",
        "G%45T",
        "GET,POST",
        "HEAD",
        "POST",
        "DELETE",
        "PUT",
        "PATCH",
        "OPTIONS",
        "TRACE",
        "CONNECT",
        "PROPFIND",
        "ＧＥＴ",
        "GET\u{0}",
        "GE\u{200b}T",
    ] {
        judge
            .case(&format!("h1 method {method:?}"), &[], async |to| {
                exchange(FRONTEND, to, &raw(method, ALLOWED, "")).await;
            })
            .await;
    }
    for method in ["get", "Get", "HEAD", "POST", "DELETE", "GETS", "XGET", "PROPFIND"] {
        judge
            .case(&format!("h2 method {method:?}"), &[], async |to| {
                let request = Request {
                    from: ip(FRONTEND),
                    to,
                    authority: "inventory-api:8080",
                    method,
                    path: ALLOWED,
                };
                let _ = client::send(Protocol::Http2, &request).await;
            })
            .await;
    }
    // An override header is the application's business: it receives a GET, the header is there
    // for it to ignore (Cilium judges the method too, never the override).
    for header in ["x-http-method-override: DELETE\r\n", "x-method-override: DELETE\r\n"] {
        judge
            .case(&format!("h1 GET with {}", header.trim()), &[("GET", ALLOWED)], async |to| {
                exchange(FRONTEND, to, &raw("GET", ALLOWED, header)).await;
            })
            .await;
    }
    judge.finish("methods");

    // 2. Identity spoofing: reporting claims to be frontend.
    let mut judge = Judge::new(&cluster);
    let claim = "127.0.0.2:40000 127.0.0.10:8080";
    let spoofs: Vec<String> = [
        format!("{CONNECTION_HEADER}: {claim}\r\n"),
        format!("X-L7GATE-CONNECTION: {claim}\r\n"),
        format!("X-L7gate-Connection: {claim}\r\n"),
        format!("{CONNECTION_HEADER}: {claim}\r\n{CONNECTION_HEADER}: {claim}\r\n"),
        format!("{CONNECTION_HEADER}:{claim}\r\n"),
        format!("{CONNECTION_HEADER} : {claim}\r\n"),
        format!("x_l7gate_connection: {claim}\r\n"),
        "x-forwarded-for: 127.0.0.2\r\n".into(),
        "x-forwarded-for: 127.0.0.2, 127.0.0.2\r\n".into(),
        "x-real-ip: 127.0.0.2\r\n".into(),
        "forwarded: for=127.0.0.2\r\n".into(),
        "x-envoy-external-address: 127.0.0.2\r\n".into(),
        "x-envoy-internal: true\r\n".into(),
        "x-envoy-original-dst-host: 127.0.0.2:8080\r\n".into(),
        "x-client-ip: 127.0.0.2\r\n".into(),
        "true-client-ip: 127.0.0.2\r\n".into(),
    ]
    .into_iter()
    .collect();
    for spoof in &spoofs {
        judge
            .case(
                &format!("reporting h1 with {}", spoof.trim().replace("\r\n", " | ")),
                &[],
                async |to| {
                    exchange(REPORTING, to, &raw("GET", ALLOWED, spoof)).await;
                },
            )
            .await;
    }
    for (name, value) in [
        (CONNECTION_HEADER, claim),
        ("x-forwarded-for", "127.0.0.2"),
        ("forwarded", "for=127.0.0.2"),
        ("x-envoy-external-address", "127.0.0.2"),
    ] {
        judge
            .case(&format!("reporting h2 with {name}"), &[], async |to| {
                let request = Request {
                    from: ip(REPORTING),
                    to,
                    authority: "inventory-api:8080",
                    method: "GET",
                    path: ALLOWED,
                };
                let _ =
                    client::send_with(Protocol::Http2, &request, &[(name, value.as_bytes())]).await;
            })
            .await;
    }
    // Frontend claiming to be someone else is still frontend, and the application never sees
    // the claim.
    judge
        .case("frontend h1 claiming reporting", &[("GET", ALLOWED)], async |to| {
            let spoof = format!("{CONNECTION_HEADER}: 127.0.0.3:1 127.0.0.10:8080\r\n");
            exchange(FRONTEND, to, &raw("GET", ALLOWED, &spoof)).await;
        })
        .await;
    judge.finish("identity spoofing");

    // 3. Smuggling over HTTP/1.1: one connection, a request hidden behind an allowed one.
    let mut judge = Judge::new(&cluster);
    let hidden = "DELETE /api/inventory/item1 HTTP/1.1\r\nhost: inventory-api:8080\r\n\r\n";
    let head = |headers: &str| {
        format!("GET {ALLOWED} HTTP/1.1\r\nhost: inventory-api:8080\r\n{headers}\r\n")
    };
    let chunked_hidden = format!("0\r\n\r\n{hidden}");
    let smuggles: Vec<(String, String)> = vec![
        ("CL.TE".into(), head(&format!("content-length: {}\r\ntransfer-encoding: chunked\r\n", chunked_hidden.len())) + &chunked_hidden),
        ("TE.CL".into(), head("transfer-encoding: chunked\r\ncontent-length: 4\r\n") + &format!("{:x}\r\n{hidden}\r\n0\r\n\r\n", hidden.len())),
        ("TE obfuscated (xchunked)".into(), head(&format!("transfer-encoding: xchunked\r\ncontent-length: {}\r\n", chunked_hidden.len())) + &chunked_hidden),
        ("TE with a space before the colon".into(), head("transfer-encoding : chunked\r\n") + &chunked_hidden),
        ("TE chunked, identity".into(), head("transfer-encoding: chunked, identity\r\n") + &chunked_hidden),
        ("TE twice".into(), head("transfer-encoding: chunked\r\ntransfer-encoding: identity\r\n") + &chunked_hidden),
        ("TE tab".into(), head("transfer-encoding:\tchunked\r\n") + &chunked_hidden),
        ("TE vertical tab".into(), head("transfer-encoding:\u{b}chunked\r\n") + &chunked_hidden),
        ("TE line folding".into(), head("transfer-encoding:\r\n chunked\r\n") + &chunked_hidden),
        ("two content-lengths".into(), head(&format!("content-length: 0\r\ncontent-length: {}\r\n", hidden.len())) + hidden),
        ("content-length +n".into(), head(&format!("content-length: +{}\r\n", hidden.len())) + hidden),
        ("content-length list".into(), head(&format!("content-length: {0}, {0}\r\n", hidden.len())) + hidden),
        ("chunk size overflow".into(), head("transfer-encoding: chunked\r\n") + &format!("1000000000000000{:x}\r\n{hidden}\r\n0\r\n\r\n", hidden.len())),
        ("chunk extension".into(), head("transfer-encoding: chunked\r\n") + &format!("0;ext=\"\r\n\r\n{hidden}\"\r\n\r\n")),
        ("bare LF".into(), format!("GET {ALLOWED} HTTP/1.1\nhost: inventory-api:8080\ncontent-length: {}\n\n{hidden}", hidden.len())),
        ("CR in a header value".into(), head("x-a: b\rDELETE /api/inventory/item1 HTTP/1.1\r\n")),
        ("NUL in a header value".into(), head("x-a: b\0c\r\n") + hidden),
        ("HTTP/1.0 keep-alive".into(), format!("GET {ALLOWED} HTTP/1.0\r\nhost: inventory-api:8080\r\nconnection: keep-alive\r\ncontent-length: {}\r\n\r\n{hidden}", hidden.len())),
    ];
    for (name, bytes) in &smuggles {
        // The allowed request may be served (once); the hidden DELETE must be judged and denied.
        judge
            .case_within(name, &[("GET", ALLOWED)], false, async |to| {
                exchange(FRONTEND, to, bytes.as_bytes()).await;
            })
            .await;
    }
    // Pipelining: both requests are judged, in order; the application sees the allowed one.
    judge
        .case("pipelined GET then DELETE", &[("GET", ALLOWED)], async |to| {
            let both =
                format!("GET {ALLOWED} HTTP/1.1\r\nhost: inventory-api:8080\r\n\r\n{hidden}");
            exchange(FRONTEND, to, both.as_bytes()).await;
        })
        .await;
    for (name, target) in [
        ("absolute-form", format!("http://inventory-api:8080{ALLOWED}")),
        ("absolute-form to admin", "http://inventory-api:8080/api/admin".to_string()),
        ("absolute-form with userinfo", "http://x@inventory-api:8080/api/admin".to_string()),
        ("asterisk-form", "*".to_string()),
        ("authority-form", "inventory-api:8080".to_string()),
        ("no leading slash", "api/inventory/item1".to_string()),
    ] {
        let expect: &[(&str, &str)] =
            if name == "absolute-form" { &[("GET", ALLOWED)] } else { &[] };
        judge
            .case(&format!("target {name}"), expect, async |to| {
                exchange(FRONTEND, to, &raw("GET", &target, "")).await;
            })
            .await;
    }
    judge.finish("smuggling");

    // 4. HTTP/2 framing, written by hand.
    let mut judge = Judge::new(&cluster);
    let request_line = |method: &str, path: &str| {
        vec![
            (":method", method.to_string()),
            (":scheme", "http".into()),
            (":path", path.to_string()),
            (":authority", "inventory-api:8080".into()),
        ]
    };
    let get = request_line("GET", ALLOWED);
    judge
        .case("control: one HEADERS frame", &[("GET", ALLOWED)], async |to| {
            exchange(FRONTEND, to, &single(&get)).await;
        })
        .await;
    judge
        .case("control: headers split over CONTINUATION", &[("GET", ALLOWED)], async |to| {
            let block = hpack(&get);
            let (a, b) = block.split_at(block.len() / 2);
            exchange(
                FRONTEND,
                to,
                &h2(&[headers_frame(1, a, END_STREAM), frame(CONTINUATION, END_HEADERS, 1, b)]),
            )
            .await;
        })
        .await;
    let with = |extra: &[(&'static str, &str)]| {
        let mut fields = get.clone();
        fields.extend(extra.iter().map(|(n, v)| (*n, v.to_string())));
        fields
    };
    let framing: Vec<(&str, Vec<u8>)> = vec![
        ("DELETE", single(&request_line("DELETE", ALLOWED))),
        ("lower-case get", single(&request_line("get", ALLOWED))),
        ("two :path, the second outside", single(&with(&[(":path", "/api/admin")]))),
        ("two :method, the second DELETE", single(&with(&[(":method", "DELETE")]))),
        (
            "pseudo-header after a regular one",
            single(&[
                (":method", "GET".into()),
                (":scheme", "http".into()),
                (":authority", "inventory-api:8080".into()),
                ("x-a", "b".into()),
                (":path", ALLOWED.into()),
            ]),
        ),
        (
            "no :path",
            single(&[
                (":method", "GET".into()),
                (":scheme", "http".into()),
                (":authority", "inventory-api:8080".into()),
            ]),
        ),
        ("empty :path", single(&request_line("GET", ""))),
        (":path without a slash", single(&request_line("GET", "api/inventory/item1"))),
        (":path *", single(&request_line("GET", "*"))),
        (":path with a space", single(&request_line("GET", "/api/inventory/a /../../admin"))),
        (":path with CRLF", single(&request_line("GET", "/api/inventory/a\r\nDELETE /x"))),
        ("upper-case header name", single(&with(&[("X-Token", "t")]))),
        ("connection-specific header", single(&with(&[("transfer-encoding", "chunked")]))),
        (
            "spoofed connection header",
            single(&with(&[(CONNECTION_HEADER, "127.0.0.3:1 127.0.0.10:8080")])),
        ),
        (
            "pseudo-header in trailers",
            h2(&[
                headers_frame(1, &hpack(&get), END_HEADERS),
                headers_frame(1, &hpack(&[(":method", "DELETE".into())]), END_STREAM | END_HEADERS),
            ]),
        ),
        (
            "content-length mismatch",
            h2(&[
                headers_frame(1, &hpack(&with(&[("content-length", "1")])), END_HEADERS),
                frame(DATA, END_STREAM, 1, b"abcdef"),
            ]),
        ),
        (
            "CONTINUATION on another stream",
            h2(&[
                headers_frame(1, &hpack(&get), END_STREAM),
                frame(CONTINUATION, END_HEADERS, 3, &hpack(&request_line("DELETE", ALLOWED))),
            ]),
        ),
        (
            "stream 3 DELETE after stream 1 GET",
            h2(&[
                headers_frame(1, &hpack(&get), END_STREAM | END_HEADERS),
                headers_frame(
                    3,
                    &hpack(&request_line("DELETE", ALLOWED)),
                    END_STREAM | END_HEADERS,
                ),
            ]),
        ),
        (
            "RST_STREAM then reuse",
            h2(&[
                headers_frame(1, &hpack(&request_line("DELETE", ALLOWED)), END_HEADERS),
                frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]),
                headers_frame(
                    1,
                    &hpack(&request_line("DELETE", ALLOWED)),
                    END_STREAM | END_HEADERS,
                ),
            ]),
        ),
    ];
    for (name, bytes) in &framing {
        // The allowed stream 1 of some cases may be served once; nothing else may arrive.
        judge
            .case_within(&format!("h2 {name}"), &[("GET", ALLOWED)], false, async |to| {
                exchange(FRONTEND, to, bytes).await;
            })
            .await;
    }
    judge.finish("HTTP/2 framing");
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A connection carrying one request: a single HEADERS frame on stream 1 with `fields`.
fn single(fields: &[(&str, String)]) -> Vec<u8> {
    h2(&[headers_frame(1, &hpack(fields), END_STREAM | END_HEADERS)])
}

fn headers_frame(stream: u32, block: &[u8], flags: u8) -> Vec<u8> {
    frame(HEADERS, flags, stream, block)
}

/// The connection preface, an empty SETTINGS frame, then `frames`.
fn h2(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    for f in frames {
        out.extend_from_slice(f);
    }
    out
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), first byte's high bits `flags`.
fn hpack_int(out: &mut Vec<u8>, flags: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

/// A header block of literal fields without indexing, names and values not Huffman-coded.
fn hpack(fields: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_int(&mut out, 0, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, 0, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}
