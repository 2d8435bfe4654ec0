//! The seed scenario as data: who sends what to whom, over which protocol, and what must happen.
//! The demo binary prints it as a table and the e2e tests assert it; both run exactly these rows
//! through [`run`] and judge them with [`check`].

use std::net::IpAddr;

use crate::harness::client::{self, Header, Protocol, Request, SendError};
use crate::harness::cluster::Cluster;
use crate::harness::upstream::{Seen, Upstream};
use l7gate_filter::headermap::CONNECTION_HEADER;

/// Who sends the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A workload of the inventory: the client binds its address.
    Endpoint(&'static str),
    /// An address the inventory does not know (identity `reserved:world`).
    Address(&'static str),
}

/// What must happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// 200 from the target's application, which saw this path (after Envoy's normalisation).
    Allow { upstream_path: &'static str },
    /// 403 `Access denied\r\n` from the sidecar; no application was contacted.
    Deny,
    /// Envoy answers a redirect itself (before any filter); no application was contacted.
    Redirect { status: u16, location: &'static str },
}

/// One row of the table; it runs once per protocol in `over`.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub from: Peer,
    /// Target endpoint (it has a sidecar).
    pub to: &'static str,
    pub over: &'static [Protocol],
    pub method: &'static str,
    pub path: &'static str,
    pub expect: Expect,
    /// The part of the spec the row exercises.
    pub spec: &'static str,
}

const FRONTEND: Peer = Peer::Endpoint("frontend");
const REPORTING: Peer = Peer::Endpoint("reporting");
const UNKNOWN: Peer = Peer::Address("127.0.0.5");
const BOTH: &[Protocol] = &[Protocol::Http1, Protocol::Http2];
/// Paths a typed HTTP/1 client would not send verbatim go raw over HTTP/1.1; HTTP/2 carries
/// `:path` verbatim anyway.
const RAW_AND_H2: &[Protocol] = &[Protocol::RawHttp1, Protocol::Http2];

/// The seed table (manifests/ + endpoints.yaml).
#[rustfmt::skip]
pub const SEED: &[Case] = &[
    // inventory-api-l7: frontend may GET /api/inventory/.*
    Case { from: FRONTEND, to: "inventory-api", over: BOTH, method: "GET", path: "/api/inventory/item123",
        expect: Expect::Allow { upstream_path: "/api/inventory/item123" },
        spec: "spec §5.1 method and path both match" },
    Case { from: FRONTEND, to: "inventory-api", over: BOTH, method: "DELETE", path: "/api/inventory/item123",
        expect: Expect::Deny, spec: "spec §5.1 method must match too (AND)" },
    Case { from: FRONTEND, to: "inventory-api", over: BOTH, method: "POST", path: "/api/inventory/item123",
        expect: Expect::Deny, spec: "spec §5.1 method must match too (AND)" },
    Case { from: FRONTEND, to: "inventory-api", over: BOTH, method: "GET", path: "/api/other",
        expect: Expect::Deny, spec: "spec §5.2 full-match anchoring" },
    Case { from: FRONTEND, to: "inventory-api", over: BOTH, method: "GET", path: "/api/inventory",
        expect: Expect::Deny, spec: "spec §5.2 `/api/inventory/.*` does not match `/api/inventory`" },
    Case { from: FRONTEND, to: "inventory-api", over: BOTH, method: "GET", path: "/api/inventory/item123?fields=qty",
        expect: Expect::Allow { upstream_path: "/api/inventory/item123?fields=qty" },
        spec: "spec §5.3 the query is part of the matched path" },
    Case { from: REPORTING, to: "inventory-api", over: BOTH, method: "GET", path: "/api/inventory/item123",
        expect: Expect::Deny, spec: "spec §4.1 default-deny: peer not selected by fromEndpoints" },
    Case { from: UNKNOWN, to: "inventory-api", over: BOTH, method: "GET", path: "/api/inventory/item123",
        expect: Expect::Deny, spec: "spec §2.4 unknown address is reserved:world, not allowed" },
    // payment-gateway-l7: frontend may POST /process-payment
    Case { from: FRONTEND, to: "payment-gateway", over: BOTH, method: "POST", path: "/process-payment",
        expect: Expect::Allow { upstream_path: "/process-payment" },
        spec: "spec §5.1 method and path both match" },
    Case { from: FRONTEND, to: "payment-gateway", over: BOTH, method: "GET", path: "/process-payment",
        expect: Expect::Deny, spec: "spec §5.1 method must match too (AND)" },
    Case { from: FRONTEND, to: "payment-gateway", over: BOTH, method: "POST", path: "/process-payment?id=7",
        expect: Expect::Deny, spec: "spec §5.3 query included: `/process-payment` rejects `?id=7`" },
    // catalog: no policy selects it for ingress
    Case { from: REPORTING, to: "catalog", over: BOTH, method: "GET", path: "/",
        expect: Expect::Allow { upstream_path: "/" }, spec: "spec §4.1 no policy → allow" },
    Case { from: UNKNOWN, to: "catalog", over: BOTH, method: "DELETE", path: "/anything",
        expect: Expect::Allow { upstream_path: "/anything" }, spec: "spec §4.1 no policy → allow" },
    // Path tricks against inventory-api: policy sees the normalised path.
    Case { from: FRONTEND, to: "inventory-api", over: RAW_AND_H2, method: "GET", path: "/api/inventory/../admin",
        expect: Expect::Deny, spec: "spec §5.3 normalised path: dot segments removed → /api/admin" },
    Case { from: FRONTEND, to: "inventory-api", over: RAW_AND_H2, method: "GET", path: "/api/inventory/%2e%2e/admin",
        expect: Expect::Deny, spec: "spec §5.3 normalised path: %2e%2e is a dot segment → /api/admin" },
    Case { from: FRONTEND, to: "inventory-api", over: RAW_AND_H2, method: "GET", path: "/api/inventory/./item123",
        expect: Expect::Allow { upstream_path: "/api/inventory/item123" },
        spec: "spec §5.3 normalised path: `.` removed, upstream sees the same path as the policy" },
    Case { from: FRONTEND, to: "inventory-api", over: RAW_AND_H2, method: "GET", path: "//api/inventory/x",
        expect: Expect::Allow { upstream_path: "/api/inventory/x" },
        spec: "spec §5.3 normalised path: repeated slashes merged" },
    Case { from: FRONTEND, to: "inventory-api", over: RAW_AND_H2, method: "GET", path: "/api/inventory/..%2Fadmin",
        expect: Expect::Redirect { status: 307, location: "/api/admin" },
        spec: "spec §5.3 escaped slash: Envoy unescapes, normalises and redirects; never forwarded" },
];

/// Every (row, protocol) pair of a table, in order.
pub fn requests(table: &'static [Case]) -> impl Iterator<Item = (&'static Case, Protocol)> {
    table.iter().flat_map(|case| case.over.iter().map(move |p| (case, *p)))
}

/// What actually happened.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The response, or why there was none.
    pub response: Result<client::Response, String>,
    /// Requests the applications received meanwhile: (application, request).
    pub contacted: Vec<(String, Seen)>,
}

impl Outcome {
    /// One line for a table.
    pub fn summary(&self) -> String {
        let reply = match &self.response {
            Ok(r) if r.status == 200 => format!("200 {:?}", r.body),
            Ok(r) if (300..400).contains(&r.status) => {
                format!("{} → {}", r.status, r.header("location").unwrap_or("(no location)"))
            }
            Ok(r) => format!("{} {:?}", r.status, r.body),
            Err(e) => e.clone(),
        };
        if self.contacted.is_empty() {
            format!("{reply}; no app contacted")
        } else {
            let apps: Vec<String> = self
                .contacted
                .iter()
                .map(|(app, seen)| format!("{app} got {} {}", seen.method, seen.path))
                .collect();
            format!("{reply}; {}", apps.join(", "))
        }
    }
}

impl Case {
    /// The request as a table cell.
    pub fn describe(&self, protocol: Protocol) -> String {
        let from = match self.from {
            Peer::Endpoint(name) => name,
            Peer::Address(ip) => ip,
        };
        format!("{from} → {} {protocol} {} {}", self.to, self.method, self.path)
    }

    /// The expectation as a table cell.
    pub fn expected(&self) -> String {
        match self.expect {
            Expect::Allow { upstream_path } => {
                format!("200 from {} (saw {upstream_path})", self.to)
            }
            Expect::Deny => "403 Access denied".to_string(),
            Expect::Redirect { status, location } => format!("{status} → {location}"),
        }
    }
}

/// Sends one row's request to the cluster. `Err` means the harness could not run it at all.
pub async fn run(cluster: &Cluster, case: &Case, protocol: Protocol) -> Result<Outcome, String> {
    let exchange = Exchange {
        from: case.from,
        to: case.to,
        method: case.method,
        path: case.path,
        authority: None,
        headers: &[],
    };
    exchange.run(cluster, protocol).await
}

/// One request to a sidecar of the cluster, with what a table row may add to it.
pub struct Exchange<'a> {
    pub from: Peer,
    /// The endpoint whose sidecar receives the request.
    pub to: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// `Host` / `:authority`; default `<to>:<listener port>`.
    pub authority: Option<&'a str>,
    /// Extra header lines (see [`client::send_with`]).
    pub headers: &'a [Header<'a>],
}

impl Exchange<'_> {
    /// Sends it and records which applications saw a request meanwhile.
    pub async fn run(&self, cluster: &Cluster, protocol: Protocol) -> Result<Outcome, String> {
        let from: IpAddr = match self.from {
            Peer::Endpoint(name) => *cluster
                .inventory
                .endpoint(name)
                .and_then(|e| e.ips.first())
                .ok_or(format!("{name} is not in the inventory"))?,
            Peer::Address(ip) => ip.parse().map_err(|e| format!("{ip}: {e}"))?,
        };
        let target =
            cluster.sidecar(self.to).ok_or(format!("{} has no sidecar in the cluster", self.to))?;
        let to = target.envoy.listener();
        let authority = self
            .authority
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}:{}", self.to, to.port()));
        let before: Vec<usize> = cluster.sidecars.iter().map(|s| s.upstream.count()).collect();
        let request =
            Request { from, to, authority: &authority, method: self.method, path: self.path };
        let response =
            client::send_with(protocol, &request, self.headers).await.map_err(|e| match e {
                SendError::Connect(e) => format!("connect {from} → {to}: {e}"),
                other => other.to_string(),
            });
        let contacted = cluster
            .sidecars
            .iter()
            .zip(before)
            .flat_map(|(s, n)| {
                s.upstream
                    .seen()
                    .into_iter()
                    .skip(n)
                    .map(|seen| (s.upstream.name().to_string(), seen))
            })
            .collect();
        Ok(Outcome { response, contacted })
    }
}

/// Whether the outcome is what the row expects; `Err` says how it differs.
pub fn check(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let response = outcome.response.as_ref().map_err(|e| format!("no response: {e}"))?;
    check_response(case, response)?;
    match case.expect {
        Expect::Allow { upstream_path } => match outcome.contacted.as_slice() {
            [(app, seen)]
                if app == case.to && seen.method == case.method && seen.path == upstream_path =>
            {
                // The sidecar's connection header (envoy/sidecar.yaml) is removed upstream.
                match seen.header_names.iter().find(|n| *n == CONNECTION_HEADER) {
                    Some(n) => {
                        Err(format!("{} received the sidecar's internal header {n}", case.to))
                    }
                    None => Ok(()),
                }
            }
            other => Err(format!(
                "expected {} to get exactly {} {upstream_path}, apps got {other:?}",
                case.to, case.method
            )),
        },
        Expect::Deny | Expect::Redirect { .. } => no_app_contacted(outcome),
    }
}

/// Whether the response is what the row expects (what reached the applications aside).
pub fn check_response(case: &Case, response: &client::Response) -> Result<(), String> {
    match case.expect {
        Expect::Allow { upstream_path } => {
            let body = Upstream::reply_body(case.to, case.method, upstream_path);
            if response.status != 200 || response.body != body {
                return Err(format!(
                    "expected 200 {body:?}, got {} {:?}",
                    response.status, response.body
                ));
            }
            Ok(())
        }
        Expect::Deny => {
            let content_type = response.header("content-type");
            if response.status != 403
                || response.body != "Access denied\r\n"
                || content_type != Some("text/plain")
            {
                return Err(format!(
                    "expected 403 \"Access denied\\r\\n\" (text/plain), got {} {:?} ({content_type:?})",
                    response.status, response.body
                ));
            }
            Ok(())
        }
        Expect::Redirect { status, location } => {
            let got = response.header("location");
            if response.status != status || got != Some(location) {
                return Err(format!(
                    "expected {status} to {location}, got {} to {got:?}",
                    response.status
                ));
            }
            Ok(())
        }
    }
}

fn no_app_contacted(outcome: &Outcome) -> Result<(), String> {
    if outcome.contacted.is_empty() {
        Ok(())
    } else {
        Err(format!("no application may be contacted, but got {:?}", outcome.contacted))
    }
}
