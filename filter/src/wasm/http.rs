//! HTTP request context: reads every request header in one hostcall, takes the connection's
//! peer and local address from the connection header the bootstrap has Envoy set (or, without
//! one, from the `source.address`/`destination.address` properties), asks the engine, publishes
//! the decision (flow record and counter, see `observe`), and answers a denial with Cilium's
//! 403 (spec §5.6). On ingress the peer is the connection's source; on egress it is the
//! destination the request's `:authority` names (spec §6.4), the same one the dynamic forward
//! proxy after this filter connects to, and the caller must be the endpoint the egress listener
//! serves ([`crate::engine::Engine::serves_caller`]).

use std::net::SocketAddr;
use std::rc::Rc;

use super::host;
use super::plugin::Plugin;
use crate::config::{Mismatch, Protocol};
use crate::engine::{Direction, Reason, Request, Rewrite, Verdict};
use crate::flowlog::Decision;
use crate::fqdn::Destination;
use crate::headermap::{connection_addresses, HeaderMap};

/// The port a plain-HTTP request goes to when its `:authority` names none.
const HTTP_PORT: u16 = 80;

/// Cilium's denial body (spec §5.6).
const DENIED_BODY: &[u8] = b"Access denied\r\n";

pub struct Http {
    plugin: Rc<Plugin>,
}

/// Sends the 403; the request stays paused until Envoy sends it.
fn deny(details: &str) {
    if !host::send_local_response(403, details, &[(b"content-type", b"text/plain")], DENIED_BODY) {
        log::error!("l7gate: could not send the 403 reply ({details})");
    }
}

impl Http {
    pub fn new(plugin: Rc<Plugin>) -> Http {
        Http { plugin }
    }

    /// A request of a context the filter does not know (never expected) is denied.
    pub fn deny_unknown_context() {
        log::error!("l7gate: denied a request of an unknown context");
        deny("l7gate_denied_unknown_context");
    }

    /// The connection's (peer, local) addresses.
    fn addresses(&self, headers: &HeaderMap<'_>) -> Option<(SocketAddr, SocketAddr)> {
        match &self.plugin.connection_header {
            // The bootstrap promised the header: without it (or garbled) nothing is known.
            Some(_) => headers.connection.and_then(connection_addresses),
            None => host::source_address().zip(host::local_address()),
        }
    }

    /// Decides the request; `false` after sending the denial.
    pub fn on_request_headers(&self) -> bool {
        let (engine, observer, direction) =
            (&self.plugin.engine, &self.plugin.observer, self.plugin.role.direction());
        let buffer = host::request_headers().unwrap_or_default();
        let headers = HeaderMap::parse(&buffer, self.plugin.connection_header.as_deref());
        let Some((headers, (source, local))) =
            headers.and_then(|h| self.addresses(&h).map(|a| (h, a)))
        else {
            log::warn!("l7gate: denied: the request's headers or the connection's addresses are unavailable");
            observer.no_address(direction);
            deny("l7gate_denied_no_address");
            return false;
        };
        let publish = |verdict: &Verdict<'_>, peer, dst_ip, port| {
            observer.publish(&Decision {
                direction,
                verdict,
                peer,
                src_ip: Some(source.ip()),
                dst_ip,
                port,
                protocol: Protocol::Tcp,
                method: headers.method,
                path: headers.path,
                host: headers.authority,
                sni: None,
            })
        };
        if direction == Direction::Egress && !engine.serves_caller(source.ip()) {
            publish(&Verdict::deny(Reason::ForeignCaller, None), None, None, local.port());
            log::debug!(
                "l7gate: denied egress from {source}: not the endpoint this listener serves"
            );
            deny("l7gate_denied_foreign_caller");
            return false;
        }
        let (destination, port) = match direction {
            Direction::Ingress => (None, local.port()),
            Direction::Egress => {
                // The dynamic forward proxy connects to the authority's port, 80 when it names
                // none: that port is the one decided, whatever port the listener has.
                let authority = headers.authority.and_then(|a| std::str::from_utf8(a).ok());
                let Some((destination, port)) =
                    authority.and_then(|a| Destination::of_authority_with_port(a, HTTP_PORT))
                else {
                    log::debug!("l7gate: denied: the request names no destination (:authority {authority:?})");
                    observer.no_address(direction);
                    deny("l7gate_denied_no_destination");
                    return false;
                };
                (Some(destination), port)
            }
        };
        let request = Request {
            direction,
            peer: destination.as_ref().map_or_else(
                || engine.identity_of(source.ip()),
                |d| d.peer(|ip| engine.identity_of(ip)),
            ),
            port,
            protocol: Protocol::Tcp,
            server_name: destination.as_ref().and_then(Destination::name),
            sni: None,
        };
        let dst_ip = match (&destination, direction) {
            (_, Direction::Ingress) => Some(local.ip()),
            (Some(Destination::Ip(ip)), Direction::Egress) => Some(*ip),
            (_, Direction::Egress) => None,
        };
        let verdict = engine.decide_to(&request, dst_ip, Some(&headers));
        publish(&verdict, Some(request.peer), dst_ip, port);
        if verdict.allowed {
            return rewrite(&verdict.rewrites);
        }
        if log::log_enabled!(log::Level::Debug) {
            let by = verdict
                .origin
                .map(|o| format!(" ({} {} {})", o.kind, o.policy, o.rule))
                .unwrap_or_default();
            log::debug!(
                "l7gate: denied {source} ({}) port {port}: {}{by}",
                engine.identity_name(request.peer),
                verdict.reason
            );
        }
        deny(&format!("l7gate_{}", verdict.reason.code().replace('-', "_")));
        false
    }
}

/// Applies an allowed request's header actions (spec §5.5) before it goes on. A change the host
/// refuses denies the request (fail closed): the rewrite is part of what the policy allows.
fn rewrite(rewrites: &[Rewrite<'_>]) -> bool {
    for r in rewrites.iter().filter(|r| r.changes_request()) {
        let done = match r.action {
            Mismatch::Add => host::put_request_header(r.name, r.value, false),
            Mismatch::Replace => host::put_request_header(r.name, r.value, true),
            Mismatch::Delete => host::remove_request_header(r.name),
            Mismatch::Log => true,
        };
        if !done {
            log::warn!("l7gate: denied: the host refused to {} header {}", r.action.name(), r.name);
            deny("l7gate_denied_header_rewrite_failed");
            return false;
        }
    }
    true
}
