//! Root context: turns the plugin configuration into an engine once per configuration (on the
//! canary and on every worker), shares it with request contexts, and fails closed: before a
//! configuration arrives, and with an empty one, every request is denied. Its `root_id` says
//! which filter it is ([`Role`]): the ingress or egress HTTP filter, or one of the egress network
//! filters (TLS, DNS guard). The Envoy node's metadata may name a connection header (see [`crate::headermap`])
//! that the bootstrap has Envoy set on every request; only then is that header trusted.

use std::rc::Rc;

use super::observe::{Observer, Registry};
use super::plugin::Plugin;
use super::{dns::Dns, host, http::Http, tls::Tls};
use crate::config::Config;
use crate::engine::Engine;
use crate::headermap::CONNECTION_HEADER_KEY;
use crate::role::Role;

/// A stream context: one HTTP request, or one connection of a network filter.
pub enum Stream {
    Http(Http),
    Tls(Tls),
    Dns(Dns),
}

pub struct Root {
    plugin: Rc<Plugin>,
    registry: Registry,
}

impl Root {
    pub fn new() -> Root {
        let plugin = Plugin {
            engine: Engine::unconfigured("the filter has not been configured yet"),
            observer: Observer::default(),
            role: Role::Ingress,
            connection_header: None,
        };
        Root { plugin: Rc::new(plugin), registry: Registry::default() }
    }

    /// A stream context of this configuration: a request for the HTTP filters, a connection
    /// for the network filters.
    pub fn stream(&self) -> Stream {
        let plugin = Rc::clone(&self.plugin);
        match self.plugin.role {
            Role::Ingress | Role::EgressHttp => Stream::Http(Http::new(plugin)),
            Role::EgressTls => Stream::Tls(Tls::new(plugin)),
            Role::EgressDns => Stream::Dns(Dns::new(plugin)),
        }
    }

    /// Reads and compiles the plugin configuration; `false` refuses it.
    pub fn configure(&mut self) -> bool {
        let started = host::now_nanos();
        let root_id = host::plugin_root_id();
        let Some(role) = Role::from_root_id(&root_id) else {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.root_id()).collect();
            log::error!(
                "l7gate: unknown root_id {root_id:?} (known: {}); refusing the configuration",
                known.join(", ")
            );
            return false;
        };
        let bytes = match host::plugin_configuration() {
            Ok(bytes) => bytes,
            Err(e) => {
                log::error!("l7gate: {e}; refusing the configuration");
                return false;
            }
        };
        let connection_header = host::node_metadata(CONNECTION_HEADER_KEY)
            .map(|h| h.to_ascii_lowercase())
            .filter(|h| !h.is_empty());
        if bytes.iter().all(u8::is_ascii_whitespace) {
            log::warn!("l7gate: no configuration given: every request will be denied");
            let engine = Engine::unconfigured("the plugin configuration is empty");
            let observer = Observer::unconfigured(&mut self.registry);
            self.plugin = Rc::new(Plugin { engine, observer, role, connection_header });
            return true;
        }
        match Config::from_json(&bytes).and_then(|c| Engine::compile(&c).map(|e| (c, e))) {
            Ok((config, engine)) => {
                let (ingress, egress) = engine.rule_counts();
                let who = engine
                    .endpoint()
                    .map(|e| format!("{}/{}", e.namespace, e.name))
                    .unwrap_or_default();
                let micros = started
                    .zip(host::now_nanos())
                    .map(|(a, b)| b.saturating_sub(a) / 1000)
                    .unwrap_or_default();
                let peer = connection_header
                    .as_deref()
                    .map_or("source.address".to_string(), |h| format!("the {h} header"));
                log::info!("l7gate: {} configured for {who} (peer from {peer}): {ingress} ingress and {egress} egress rules in {micros} us", role.root_id());
                let observer = Observer::configure(&config, &bytes, role, &mut self.registry);
                self.plugin = Rc::new(Plugin { engine, observer, role, connection_header });
                true
            }
            Err(e) => {
                log::error!("l7gate: refusing the configuration: {e}");
                false
            }
        }
    }
}
