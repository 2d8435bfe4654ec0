//! TLS egress (network filter, root id `egress_tls`): decides each new connection by the server
//! name `tls_inspector` read from the ClientHello (spec §6.4), before the filters after it run.
//! A denied connection is closed and never reaches `sni_dynamic_forward_proxy` or `tcp_proxy`:
//! no DNS query, no upstream connection. An allowed one goes on to the upstream resolved from the
//! same name. No SNI means no destination, which nothing allows; a caller other than the endpoint
//! the listener serves is closed too. Each decision is published like an HTTP request's (flow
//! record with the `sni`, counter; see `observe`).

use std::rc::Rc;

use super::host;
use super::plugin::Plugin;
use crate::config::Protocol;
use crate::engine::{Direction, Reason, Request, Verdict};
use crate::flowlog::Decision;
use crate::fqdn::Destination;

pub struct Tls {
    plugin: Rc<Plugin>,
    /// Set once the connection was denied: nothing it sends may pass on.
    denied: bool,
}

impl Tls {
    pub fn new(plugin: Rc<Plugin>) -> Tls {
        Tls { plugin, denied: false }
    }

    pub fn denied(&self) -> bool {
        self.denied
    }

    /// Closes the downstream connection (Envoy does it after the callback returns).
    pub fn close(why: &str) {
        log::debug!("{why}");
        if !host::close_downstream() {
            log::error!("l7gate: could not close a denied connection; holding it instead");
        }
    }

    /// Decides the new connection; `false` after closing it.
    pub fn on_new_connection(&mut self) -> bool {
        if self.allowed() {
            return true;
        }
        self.denied = true;
        Tls::close("l7gate: closing a denied TLS connection");
        false
    }

    /// The verdict for this connection, published, and logged when it is a denial.
    fn allowed(&self) -> bool {
        let (engine, observer) = (&self.plugin.engine, &self.plugin.observer);
        let Some(port) = host::local_address().map(|a| a.port()) else {
            log::warn!("l7gate: denied: the connection's local port is unavailable");
            observer.no_address(Direction::Egress);
            return false;
        };
        let source = host::source_address();
        let sni = host::requested_server_name().and_then(|n| String::from_utf8(n).ok());
        let publish = |verdict: &Verdict<'_>, peer, dst_ip| {
            observer.publish(&Decision {
                direction: Direction::Egress,
                verdict,
                peer,
                src_ip: source.map(|a| a.ip()),
                dst_ip,
                port,
                protocol: Protocol::Tcp,
                method: None,
                path: None,
                host: None,
                sni: sni.as_deref(),
            })
        };
        if !source.is_some_and(|s| engine.serves_caller(s.ip())) {
            publish(&Verdict::deny(Reason::ForeignCaller, None), None, None);
            log::debug!(
                "l7gate: denied TLS from {source:?}: not the endpoint this listener serves"
            );
            return false;
        }
        let Some(destination) = sni.as_deref().and_then(Destination::of_server_name) else {
            log::debug!("l7gate: denied a TLS connection to port {port} without a server name");
            observer.no_address(Direction::Egress);
            return false;
        };
        // serverNames match the SNI whatever it names (an address too), normalised.
        let sni_name = sni.as_deref().map(crate::fqdn::normalise);
        let request = Request {
            direction: Direction::Egress,
            peer: destination.peer(|ip| engine.identity_of(ip)),
            port,
            protocol: Protocol::Tcp,
            server_name: destination.name(),
            sni: sni_name.as_deref(),
        };
        let dst_ip = match &destination {
            Destination::Ip(ip) => Some(*ip),
            Destination::Name(_) => None,
        };
        let verdict = engine.decide_to(&request, dst_ip, None);
        publish(&verdict, Some(request.peer), dst_ip);
        if !verdict.allowed && log::log_enabled!(log::Level::Debug) {
            let by = verdict
                .origin
                .map(|o| format!(" ({} {} {})", o.kind, o.policy, o.rule))
                .unwrap_or_default();
            log::debug!(
                "l7gate: denied TLS to {destination:?} port {port}: {}{by}",
                verdict.reason
            );
        }
        verdict.allowed
    }
}
