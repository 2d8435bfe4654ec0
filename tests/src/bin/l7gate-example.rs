//! The demo workloads of the compose deployment (envoy/compose), one binary with three roles:
//!
//! * `app NAME ADDR`: the application behind a sidecar. Answers every request
//!   `200 NAME saw METHOD PATH` and logs each request it received as one JSON line on stdout
//!   (`{"app","method","path","version","headers"}`), so a test can read what reached it.
//! * `external CA_FILE NAME...`: a service outside the cluster under several DNS names: TLS on
//!   :443 (a certificate for NAMEs from a CA minted at start, written to CA_FILE as DER; answers
//!   one line `external saw LINE`) and plain HTTP on :80 (like `app`, named `external`); logs
//!   each TLS exchange as a JSON line (`{"app":"external","sni","line"}`) and HTTP as `app` does.
//! * `probe`: a client. Reads one JSON request per stdin line and prints one JSON result per
//!   line: `{"protocol":"h1"|"h2"|"h1-raw","to":"host:port","authority","method","path"}` →
//!   `{"status","headers":[[name,value]],"body"}` or `{"error"}`;
//!   `{"protocol":"tls","to","sni","ca":CA_FILE,"line"}` → `{"reply"}` or `{"closed"}` or `{"error"}`.
//!
//! * `idle`: does nothing until stopped (keeps a client container up for `probe`).
//!
//! Every role stops on SIGTERM/SIGINT (they run as PID 1).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use l7gate_e2e::harness::client::{self, Protocol, Request};
use l7gate_e2e::harness::tls::{self, TestPki, TlsOutcome, TlsUpstream};
use l7gate_e2e::harness::upstream::Upstream;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::signal::unix::{signal, SignalKind};

/// How often the servers look for requests to log.
const LOG_EVERY: Duration = Duration::from_millis(20);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["app", name, addr] => app(name, addr).await,
        ["external", ca_file, names @ ..] if !names.is_empty() => external(ca_file, names).await,
        ["probe"] => probe().await,
        ["idle"] => stopped().await,
        _ => Err("usage: l7gate-example app NAME ADDR | external CA_FILE NAME... | probe | idle"
            .to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("l7gate-example: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_addr(addr: &str) -> Result<SocketAddr, String> {
    addr.parse().map_err(|e| format!("{addr}: {e}"))
}

/// Resolves when SIGTERM or SIGINT arrives.
async fn stopped() -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => Ok(()),
        _ = int.recv() => Ok(()),
    }
}

/// Prints, every LOG_EVERY until a signal, the entries `next(from)` returns past `from`.
async fn log_until_stopped(mut next: impl FnMut(usize) -> Vec<Value>) -> Result<(), String> {
    let stop = stopped();
    tokio::pin!(stop);
    let mut logged = 0;
    loop {
        for line in next(logged) {
            logged += 1;
            println!("{line}");
        }
        tokio::select! {
            r = &mut stop => return r,
            _ = tokio::time::sleep(LOG_EVERY) => {}
        }
    }
}

fn seen_lines(app: &Upstream, from: usize) -> Vec<Value> {
    app.seen()
        .into_iter()
        .skip(from)
        .map(|s| json!({"app": app.name(), "method": s.method, "path": s.path, "version": s.version, "headers": s.header_names}))
        .collect()
}

async fn app(name: &str, addr: &str) -> Result<(), String> {
    let app = Upstream::start_at(name, parse_addr(addr)?).map_err(|e| format!("{addr}: {e}"))?;
    eprintln!("l7gate-example: app {name} on {}", app.addr());
    log_until_stopped(|from| seen_lines(&app, from)).await
}

async fn external(ca_file: &str, names: &[&str]) -> Result<(), String> {
    let pki = TestPki::new(names)?;
    std::fs::write(ca_file, pki.ca_der()).map_err(|e| format!("{ca_file}: {e}"))?;
    let tls = TlsUpstream::start("external", parse_addr("0.0.0.0:443")?, &pki)?;
    let http = Upstream::start_at("external", parse_addr("0.0.0.0:80")?)
        .map_err(|e| format!(":80: {e}"))?;
    eprintln!("l7gate-example: external service {names:?} on :443 (TLS) and :80");
    let (mut tls_logged, mut http_logged) = (0, 0);
    log_until_stopped(move |_| {
        let mut lines: Vec<Value> = tls
            .seen()
            .into_iter()
            .skip(tls_logged)
            .map(|s| json!({"app": "external", "sni": s.sni, "line": s.line}))
            .collect();
        tls_logged += lines.len();
        let more = seen_lines(&http, http_logged);
        http_logged += more.len();
        lines.extend(more);
        lines
    })
    .await
}

async fn probe() -> Result<(), String> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.map_err(|e| format!("stdin: {e}"))? {
        let result = match serde_json::from_str::<Value>(&line) {
            Ok(request) => send(&request).await.unwrap_or_else(|e| json!({ "error": e })),
            Err(e) => json!({ "error": format!("not a JSON request: {e}") }),
        };
        println!("{result}");
    }
    Ok(())
}

async fn send(request: &Value) -> Result<Value, String> {
    let field =
        |name: &str| request[name].as_str().ok_or(format!("request without {name:?}: {request}"));
    let to = tokio::net::lookup_host(field("to")?)
        .await
        .map_err(|e| format!("resolving {}: {e}", request["to"]))?
        .find(SocketAddr::is_ipv4)
        .ok_or(format!("{} has no IPv4 address", request["to"]))?;
    let from = "0.0.0.0".parse().map_err(|e| format!("{e}"))?;
    let protocol = match field("protocol")? {
        "h1" => Protocol::Http1,
        "h2" => Protocol::Http2,
        "h1-raw" => Protocol::RawHttp1,
        "tls" => {
            let ca = std::fs::read(field("ca")?).map_err(|e| format!("{}: {e}", request["ca"]))?;
            let sni = field("sni")?;
            let config = tls::client_config_trusting(ca.into(), true)?;
            return Ok(
                match tls::exchange_with(config, from, to, Some(sni), sni, field("line")?).await? {
                    TlsOutcome::Reply(reply) => json!({ "reply": reply }),
                    TlsOutcome::Closed(why) => json!({ "closed": why }),
                },
            );
        }
        other => return Err(format!("unknown protocol {other:?}")),
    };
    let request = Request {
        from,
        to,
        authority: field("authority")?,
        method: field("method")?,
        path: field("path")?,
    };
    Ok(match client::send(protocol, &request).await {
        Ok(r) => json!({ "status": r.status, "headers": r.headers, "body": r.body }),
        Err(e) => json!({ "error": e.to_string() }),
    })
}
