//! HTTP request context: reads the peer address, local port and (only if a rule needs them) the
//! request headers, asks the engine, and answers a denial with Cilium's 403 (spec §5.6).

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host;
use crate::config::Protocol;
use crate::engine::{Direction, Engine, Headers, Request};

/// Cilium's denial body (spec §5.6).
const DENIED_BODY: &[u8] = b"Access denied\r\n";

pub struct Http {
    engine: Rc<Engine>,
}

impl Http {
    pub fn new(engine: Rc<Engine>) -> Http {
        Http { engine }
    }

    fn deny(&self, details: &str) -> Action {
        if !host::send_local_response(403, details, &[("content-type", "text/plain")], DENIED_BODY) {
            log::error!("l7gate: could not send the 403 reply ({details})");
        }
        Action::Pause
    }
}

/// Request headers read through the host, on demand.
struct HostHeaders;

impl Headers for HostHeaders {
    fn get(&self, name: &str) -> Option<Vec<u8>> {
        if name.starts_with(':') {
            host::request_header(name)
        } else {
            host::request_header_joined(name)
        }
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let (Some(source), Some(port)) = (host::source_ip(), host::destination_port()) else {
            log::warn!("l7gate: denied: the connection's source address or local port is unavailable");
            return self.deny("l7gate_denied_no_address");
        };
        let request = Request {
            direction: Direction::Ingress,
            peer: self.engine.identity_of(source),
            port,
            protocol: Protocol::Tcp,
            server_name: None,
        };
        let verdict = self.engine.decide(&request, Some(&HostHeaders));
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
