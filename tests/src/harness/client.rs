//! Clients that play a workload: every connection is bound to the workload's loopback source
//! address (that is how the filter identifies the peer). A typed hyper client speaks HTTP/1.1 or
//! HTTP/2 with prior knowledge; a raw HTTP/1.1 sender writes the request line byte for byte, for
//! paths a typed client would refuse or rewrite.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How the request travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 via hyper.
    Http1,
    /// HTTP/2 with prior knowledge (h2c) via hyper.
    Http2,
    /// HTTP/1.1 written by hand: the request target reaches Envoy exactly as given.
    RawHttp1,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Http1 => "h1",
            Protocol::Http2 => "h2",
            Protocol::RawHttp1 => "h1-raw",
        })
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Source address to bind (the workload the client plays).
    pub from: IpAddr,
    /// The sidecar's listener.
    pub to: SocketAddr,
    /// `Host` / `:authority`.
    pub authority: &'a str,
    pub method: &'a str,
    /// Request target, sent as is.
    pub path: &'a str,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// First value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why no response came back.
#[derive(Debug)]
pub enum SendError {
    /// The TCP connection could not be made (refused, unreachable, bind failed).
    Connect(std::io::Error),
    /// Connected, but the exchange failed (reset, closed before a response, protocol error).
    Exchange(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect failed: {e}"),
            SendError::Exchange(e) => write!(f, "no response: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// One extra header line: name as written, value as raw bytes (a name may repeat: that is how
/// a repeated header is sent; a value may be anything, e.g. `0xff`, which is not UTF-8).
pub type Header<'a> = (&'a str, &'a [u8]);

/// Sends one request on a fresh connection and reads the whole response.
pub async fn send(protocol: Protocol, req: &Request<'_>) -> Result<Response, SendError> {
    send_with(protocol, req, &[]).await
}

/// Like [`send`], plus extra header lines sent in order: hyper lower-cases names and appends
/// each pair (never merged); `RawHttp1` writes them byte for byte, names in the given case.
pub async fn send_with(
    protocol: Protocol,
    req: &Request<'_>,
    headers: &[Header<'_>],
) -> Result<Response, SendError> {
    let stream = connect(req.from, req.to).await.map_err(SendError::Connect)?;
    match protocol {
        Protocol::Http1 => send_h1(stream, req, headers).await,
        Protocol::Http2 => send_h2(stream, req, headers).await,
        Protocol::RawHttp1 => send_raw(stream, req, headers).await,
    }
    .map_err(SendError::Exchange)
}

/// Opens a TCP connection from `from` (any free port) to `to`.
pub async fn connect(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// Parses one HTTP/1.1 response read until the server closed the connection.
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("incomplete response ({} bytes): {text:?}", raw.len()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().map_err(|_| format!("bad content-length {length:?}"))?;
        rest.get(..length)
            .ok_or_else(|| format!("body shorter than content-length {length}"))?
            .to_string()
    } else {
        rest.to_string()
    };
    Ok(Response { status, headers, body })
}

fn dechunk(mut rest: &str) -> Result<String, String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or("truncated chunk size")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        body.push_str(after.get(..size).ok_or("truncated chunk")?);
        rest = after.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

fn build(
    uri: String,
    req: &Request<'_>,
    host_header: bool,
    headers: &[Header<'_>],
) -> Result<hyper::Request<Empty<Bytes>>, String> {
    let mut request = hyper::Request::builder()
        .method(req.method)
        .uri(&uri)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot build request for {uri:?}: {e}"))?;
    let map = request.headers_mut();
    if host_header {
        let host = HeaderValue::from_str(req.authority)
            .map_err(|e| format!("authority {:?}: {e}", req.authority))?;
        map.append(hyper::header::HOST, host);
    }
    for (name, value) in headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name:?}: {e}"))?;
        let value =
            HeaderValue::from_bytes(value).map_err(|e| format!("header {name} value: {e}"))?;
        map.append(name, value);
    }
    Ok(request)
}

async fn send_h1(
    stream: TcpStream,
    req: &Request<'_>,
    headers: &[Header<'_>],
) -> Result<Response, String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let request = build(req.path.to_string(), req, true, headers)?;
    let response = match sender.send_request(request).await {
        Ok(response) => collect(response).await,
        Err(e) => Err(e.to_string()),
    };
    driver.abort();
    response
}

async fn send_h2(
    stream: TcpStream,
    req: &Request<'_>,
    headers: &[Header<'_>],
) -> Result<Response, String> {
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    // HTTP/2 carries scheme and authority as pseudo-headers: give hyper an absolute URI.
    let uri = format!("http://{}{}", req.authority, req.path);
    let request = build(uri, req, false, headers)?;
    let response = match sender.send_request(request).await {
        Ok(response) => collect(response).await,
        Err(e) => Err(e.to_string()),
    };
    driver.abort();
    response
}

async fn collect(response: hyper::Response<hyper::body::Incoming>) -> Result<Response, String> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
    Ok(Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// The raw request head: request line, `host`, the extra lines byte for byte, `connection: close`.
pub fn raw_head(req: &Request<'_>, headers: &[Header<'_>]) -> Vec<u8> {
    let mut head =
        format!("{} {} HTTP/1.1\r\nhost: {}\r\n", req.method, req.path, req.authority).into_bytes();
    for (name, value) in headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

async fn send_raw(
    mut stream: TcpStream,
    req: &Request<'_>,
    headers: &[Header<'_>],
) -> Result<Response, String> {
    stream.write_all(&raw_head(req, headers)).await.map_err(|e| e.to_string())?;
    // Stop reading as soon as the response is complete instead of waiting for Envoy to close:
    // after a local reply (the filter's 403) Envoy waits for the client to close first, up to
    // its delayed_close_timeout (1 s), which would make every denied raw request take a second.
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !is_complete(&raw) {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    parse_response(&raw)
}

/// Whether `raw` holds a whole HTTP/1.1 response with a known length (content-length or
/// chunked); a response delimited by the connection closing is never complete early.
fn is_complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = &raw[end + 4..];
    let header = |name: &str| {
        head.split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    if header("transfer-encoding").is_some_and(|v| v == "chunked") {
        body.ends_with(b"0\r\n\r\n")
    } else if let Some(length) = header("content-length") {
        length.parse::<usize>().is_ok_and(|n| body.len() >= n)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::upstream::Upstream;

    #[test]
    fn parses_content_length_and_chunked_bodies() {
        let r = parse_response(
            b"HTTP/1.1 403 Forbidden\r\ncontent-length: 15\r\nContent-Type: text/plain\r\n\r\nAccess denied\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (403, "Access denied\r\n"));
        assert_eq!(r.header("content-type"), Some("text/plain"));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "abcde"));
    }

    #[test]
    fn raw_head_keeps_bytes_case_and_repeats() {
        let req = Request {
            from: "127.0.0.1".parse().unwrap(),
            to: "127.0.0.1:1".parse().unwrap(),
            authority: "a:1",
            method: "GET",
            path: "/p",
        };
        let head = raw_head(&req, &[("X-T", b"blue"), ("X-T", b"\xff")]);
        assert_eq!(
            head,
            b"GET /p HTTP/1.1\r\nhost: a:1\r\nX-T: blue\r\nX-T: \xff\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn response_completeness() {
        assert!(!is_complete(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 15\r\n\r\nAccess"));
        assert!(is_complete(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 15\r\n\r\nAccess denied\r\n"
        ));
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"));
        assert!(is_complete(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        ));
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\n\r\nuntil close"));
    }

    // Without Envoy: every protocol delivers the request (repeated header included).
    #[tokio::test]
    async fn every_protocol_reaches_a_plain_upstream() {
        let app = Upstream::start("echo").unwrap();
        for protocol in [Protocol::Http1, Protocol::Http2, Protocol::RawHttp1] {
            let req = Request {
                from: "127.0.0.1".parse().unwrap(),
                to: app.addr(),
                authority: "echo",
                method: "GET",
                path: "/h",
            };
            let response = send_with(protocol, &req, &[("x-a", b"1"), ("x-a", b"2")])
                .await
                .unwrap_or_else(|e| panic!("{protocol}: {e}"));
            assert_eq!(
                (response.status, response.body.as_str()),
                (200, "echo saw GET /h"),
                "{protocol}"
            );
        }
        assert_eq!(app.count(), 3);
    }
}
