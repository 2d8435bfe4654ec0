//! TLS egress (network filter, root id `egress_tls`): decides each new connection by the server
//! name `tls_inspector` read from the ClientHello (spec §6.4), before the filters after it run.
//! A denied connection is closed and never reaches `sni_dynamic_forward_proxy` or `tcp_proxy`:
//! no DNS query, no upstream connection. An allowed one goes on to the upstream resolved from the
//! same name. No SNI means no destination, which nothing allows. Each decision is published
//! like an HTTP request's (flow record with the `sni`, counter; see `observe`).

use std::rc::Rc;

use proxy_wasm::traits::{Context, StreamContext};
use proxy_wasm::types::Action;

use super::host;
use super::observe::Observer;
use crate::config::Protocol;
use crate::engine::{Direction, Engine, Request};
use crate::flowlog::Decision;
use crate::fqdn::Destination;

pub struct Tls {
    engine: Rc<Engine>,
    observer: Rc<Observer>,
    /// Set once the connection was denied: nothing it sends may pass on.
    denied: bool,
}

impl Tls {
    pub fn new(engine: Rc<Engine>, observer: Rc<Observer>) -> Tls {
        Tls { engine, observer, denied: false }
    }

    /// The verdict for this connection, published, and logged when it is a denial.
    fn allowed(&self) -> bool {
        let Some(port) = host::destination_port() else {
            log::warn!("l7gate: denied: the connection's local port is unavailable");
            self.observer.no_address(Direction::Egress);
            return false;
        };
        let sni = host::requested_server_name().and_then(|n| String::from_utf8(n).ok());
        let Some(destination) = sni.as_deref().and_then(Destination::of_server_name) else {
            log::debug!("l7gate: denied a TLS connection to port {port} without a server name");
            self.observer.no_address(Direction::Egress);
            return false;
        };
        let request = Request {
            direction: Direction::Egress,
            peer: destination.peer(|ip| self.engine.identity_of(ip)),
            port,
            protocol: Protocol::Tcp,
            server_name: destination.name(),
        };
        let verdict = self.engine.decide(&request, None);
        self.observer.publish(&Decision {
            direction: Direction::Egress,
            verdict: &verdict,
            peer: Some(request.peer),
            src_ip: host::source_ip(),
            dst_ip: match &destination {
                Destination::Ip(ip) => Some(*ip),
                Destination::Name(_) => None,
            },
            port,
            protocol: Protocol::Tcp,
            method: None,
            path: None,
            host: None,
            sni: sni.as_deref(),
        });
        if !verdict.allowed && log::log_enabled!(log::Level::Debug) {
            let by = verdict.origin.map(|o| format!(" ({} {} {})", o.kind, o.policy, o.rule)).unwrap_or_default();
            log::debug!("l7gate: denied TLS to {destination:?} port {port}: {}{by}", verdict.reason);
        }
        verdict.allowed
    }
}

impl Context for Tls {}

impl StreamContext for Tls {
    fn on_new_connection(&mut self) -> Action {
        if self.allowed() {
            return Action::Continue;
        }
        self.denied = true;
        if !host::close_downstream() {
            log::error!("l7gate: could not close a denied connection; holding it instead");
        }
        Action::Pause
    }

    fn on_downstream_data(&mut self, _data_size: usize, _end_of_stream: bool) -> Action {
        if self.denied {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}
