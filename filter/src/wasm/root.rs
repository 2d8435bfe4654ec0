//! Root context: turns the plugin configuration into an engine once per configuration (on the
//! canary and on every worker), shares it with request contexts, and fails closed: before a
//! configuration arrives, and with an empty one, every request is denied. Its `root_id` says
//! which filter it is ([`Role`]): the ingress or egress HTTP filter, or the egress TLS network
//! filter, so it creates HTTP or stream contexts accordingly.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::ContextType;

use super::observe::{Observer, Registry};
use super::{host, http::Http, tls::Tls};
use crate::config::Config;
use crate::engine::Engine;
use crate::role::Role;

pub struct Root {
    engine: Rc<Engine>,
    /// Flow records and counters of the configuration in force.
    observer: Rc<Observer>,
    registry: Registry,
    role: Role,
}

impl Root {
    pub fn new() -> Root {
        Root {
            engine: Rc::new(Engine::unconfigured("the filter has not been configured yet")),
            observer: Rc::new(Observer::default()),
            registry: Registry::default(),
            role: Role::Ingress,
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    /// Returning false refuses the configuration: Envoy then rejects it (NACK over xDS, startup
    /// error from a file) and keeps the last good one, if any.
    fn on_configure(&mut self, _size: usize) -> bool {
        let started = host::now_nanos();
        let root_id = host::plugin_root_id();
        let Some(role) = Role::from_root_id(&root_id) else {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.root_id()).collect();
            log::error!("l7gate: unknown root_id {root_id:?} (known: {}); refusing the configuration", known.join(", "));
            return false;
        };
        self.role = role;
        let bytes = match host::plugin_configuration() {
            Ok(bytes) => bytes,
            Err(e) => {
                log::error!("l7gate: {e}; refusing the configuration");
                return false;
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            log::warn!("l7gate: no configuration given: every request will be denied");
            self.engine = Rc::new(Engine::unconfigured("the plugin configuration is empty"));
            self.observer = Rc::new(Observer::unconfigured(&mut self.registry));
            return true;
        }
        match Config::from_json(&bytes).and_then(|c| Engine::compile(&c).map(|e| (c, e))) {
            Ok((config, engine)) => {
                let (ingress, egress) = engine.rule_counts();
                let who = engine.endpoint().map(|e| format!("{}/{}", e.namespace, e.name)).unwrap_or_default();
                let micros = started.zip(host::now_nanos()).map(|(a, b)| b.saturating_sub(a) / 1000).unwrap_or_default();
                log::info!("l7gate: {} configured for {who}: {ingress} ingress and {egress} egress rules in {micros} us", role.root_id());
                self.engine = Rc::new(engine);
                self.observer = Rc::new(Observer::configure(&config, &bytes, &mut self.registry));
                true
            }
            Err(e) => {
                log::error!("l7gate: refusing the configuration: {e}");
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(if self.role.is_http() { ContextType::HttpContext } else { ContextType::StreamContext })
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http::new(Rc::clone(&self.engine), Rc::clone(&self.observer), self.role.direction())))
    }

    fn create_stream_context(&self, _context_id: u32) -> Option<Box<dyn StreamContext>> {
        Some(Box::new(Tls::new(Rc::clone(&self.engine), Rc::clone(&self.observer))))
    }
}
