//! The DNS guard (network filter, root id `egress_dns`): sits on the egress Envoy's loopback DNS
//! listener, between the forward proxies' resolver and the real one (DNS over TCP), and rewrites
//! every response with [`crate::dns::rewrite_stream`] so that only addresses outside the cluster
//! reach Envoy's DNS cache. Upstream bytes are held (`Pause`) until each message is whole; a
//! malformed or oversized response closes the connection, so the resolution fails and the
//! request is denied. Each dropped address is counted and logged (a warning: somebody's record
//! points into the cluster) with the name it answered.

use std::rc::Rc;

use super::host;
use super::plugin::Plugin;
use crate::dns::{rewrite_stream, MAX_MESSAGE};

/// More upstream bytes than this held at once (a few whole messages) is not a resolver.
const MAX_HELD: usize = 4 * (MAX_MESSAGE + 2);

pub struct Dns {
    plugin: Rc<Plugin>,
    /// Set once the connection is being closed: nothing more passes.
    closed: bool,
}

impl Dns {
    pub fn new(plugin: Rc<Plugin>) -> Dns {
        Dns { plugin, closed: false }
    }

    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Only local callers (the egress Envoy's own resolver) may use the guard.
    pub fn on_new_connection(&mut self) -> bool {
        let local = host::source_address().is_some_and(|a| a.ip().is_loopback());
        if !local {
            self.close("l7gate: DNS guard: closing a connection from a non-local address");
        }
        local
    }

    /// Rewrites the responses held so far; `false` holds them (incomplete) or closes.
    pub fn on_upstream_data(&mut self, size: usize) -> bool {
        if self.closed {
            return false;
        }
        if size > MAX_HELD {
            self.close("l7gate: DNS guard: closing: the resolver sent more than any answer");
            return false;
        }
        let Some(stream) = host::upstream_data(size) else {
            self.close("l7gate: DNS guard: closing: the upstream data is unavailable");
            return false;
        };
        let engine = &self.plugin.engine;
        match rewrite_stream(&stream, |ip| engine.is_outside_address(ip)) {
            Ok(None) => false,
            Ok(Some((rewritten, results))) => {
                for r in results.iter().filter(|r| !r.dropped.is_empty()) {
                    self.plugin.observer.dropped_answers(r.dropped.len());
                    let who: Vec<String> = r
                        .dropped
                        .iter()
                        .map(|ip| match engine.is_local(*ip) {
                            true => format!("{ip} (local)"),
                            false => {
                                format!("{ip} ({})", engine.identity_name(engine.identity_of(*ip)))
                            }
                        })
                        .collect();
                    log::warn!(
                        "l7gate: DNS guard: dropped {} from the answer for {} (not outside the cluster)",
                        who.join(", "),
                        r.name
                    );
                }
                if host::replace_upstream_data(size, &rewritten) {
                    true
                } else {
                    self.close("l7gate: DNS guard: closing: could not rewrite the answer");
                    false
                }
            }
            Err(e) => {
                self.close(&format!("l7gate: DNS guard: closing: {e}"));
                false
            }
        }
    }

    fn close(&mut self, why: &str) {
        log::warn!("{why}");
        self.closed = true;
        if !host::close_downstream() || !host::close_upstream() {
            log::error!("l7gate: DNS guard: could not close the connection; holding it instead");
        }
    }
}
