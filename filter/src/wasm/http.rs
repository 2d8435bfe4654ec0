//! HTTP request context: reads the peer address, local port, request line and (only if a rule
//! needs them) other request headers, asks the engine, publishes the decision (flow record and
//! counter, see `observe`), and answers a denial with Cilium's 403 (spec §5.6). On ingress the
//! peer is the connection's source; on egress it is the destination the request's `:authority`
//! names (spec §6.4), the same one the dynamic forward proxy after this filter connects to.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host;
use super::observe::Observer;
use crate::config::Protocol;
use crate::engine::{Direction, Engine, Headers, Request};
use crate::flowlog::Decision;
use crate::fqdn::Destination;

/// The port a plain-HTTP request goes to when its `:authority` names none.
const HTTP_PORT: u16 = 80;

/// Cilium's denial body (spec §5.6).
const DENIED_BODY: &[u8] = b"Access denied\r\n";

pub struct Http {
    engine: Rc<Engine>,
    observer: Rc<Observer>,
    direction: Direction,
}

impl Http {
    pub fn new(engine: Rc<Engine>, observer: Rc<Observer>, direction: Direction) -> Http {
        Http { engine, observer, direction }
    }

    fn deny(&self, details: &str) -> Action {
        if !host::send_local_response(403, details, &[("content-type", "text/plain")], DENIED_BODY) {
            log::error!("l7gate: could not send the 403 reply ({details})");
        }
        Action::Pause
    }
}

/// Request headers read through the host: the request line once (the flow record names it),
/// other headers only when a rule asks.
struct HostHeaders {
    method: Option<Vec<u8>>,
    path: Option<Vec<u8>>,
    authority: Option<Vec<u8>>,
}

impl HostHeaders {
    fn read() -> HostHeaders {
        HostHeaders { method: host::request_header(":method"), path: host::request_header(":path"), authority: host::request_header(":authority") }
    }
}

impl Headers for HostHeaders {
    fn get(&self, name: &str) -> Option<Vec<u8>> {
        match name {
            ":method" => self.method.clone(),
            ":path" => self.path.clone(),
            ":authority" => self.authority.clone(),
            _ if name.starts_with(':') => host::request_header(name),
            _ => host::request_header_joined(name),
        }
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let (Some(source), Some(port)) = (host::source_ip(), host::destination_port()) else {
            log::warn!("l7gate: denied: the connection's source address or local port is unavailable");
            self.observer.no_address(self.direction);
            return self.deny("l7gate_denied_no_address");
        };
        let headers = HostHeaders::read();
        let (destination, port) = match self.direction {
            Direction::Ingress => (None, port),
            Direction::Egress => {
                // The dynamic forward proxy connects to the authority's port, 80 when it names
                // none: that port is the one decided, whatever port the listener has.
                let authority = headers.authority.clone().and_then(|a| String::from_utf8(a).ok());
                let Some((destination, port)) = authority.as_deref().and_then(|a| Destination::of_authority_with_port(a, HTTP_PORT)) else {
                    log::debug!("l7gate: denied: the request names no destination (:authority {authority:?})");
                    self.observer.no_address(self.direction);
                    return self.deny("l7gate_denied_no_destination");
                };
                (Some(destination), port)
            }
        };
        let request = Request {
            direction: self.direction,
            peer: destination.as_ref().map_or_else(|| self.engine.identity_of(source), |d| d.peer(|ip| self.engine.identity_of(ip))),
            port,
            protocol: Protocol::Tcp,
            server_name: destination.as_ref().and_then(Destination::name),
        };
        let verdict = self.engine.decide(&request, Some(&headers));
        let dst_ip = match (&destination, self.direction) {
            (_, Direction::Ingress) => host::destination_ip(),
            (Some(Destination::Ip(ip)), Direction::Egress) => Some(*ip),
            (_, Direction::Egress) => None,
        };
        self.observer.publish(&Decision {
            direction: self.direction,
            verdict: &verdict,
            peer: Some(request.peer),
            src_ip: Some(source),
            dst_ip,
            port,
            protocol: Protocol::Tcp,
            method: headers.method.as_deref(),
            path: headers.path.as_deref(),
            host: headers.authority.as_deref(),
            sni: None,
        });
        if verdict.allowed {
            return Action::Continue;
        }
        if log::log_enabled!(log::Level::Debug) {
            let by = verdict.origin.map(|o| format!(" ({} {} {})", o.kind, o.policy, o.rule)).unwrap_or_default();
            log::debug!("l7gate: denied {source} ({}) port {port}: {}{by}", self.engine.identity_name(request.peer), verdict.reason);
        }
        self.deny(&format!("l7gate_{}", verdict.reason.code().replace('-', "_")))
    }
}
