//! Root context: turns the plugin configuration into an engine once per configuration (on the
//! canary and on every worker), shares it with request contexts, and fails closed: before a
//! configuration arrives, and with an empty one, every request is denied.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::{host, http::Http};
use crate::config::Config;
use crate::engine::Engine;

pub struct Root {
    engine: Rc<Engine>,
}

impl Root {
    pub fn new() -> Root {
        Root { engine: Rc::new(Engine::unconfigured("the filter has not been configured yet")) }
    }
}

impl Context for Root {}

impl RootContext for Root {
    /// Returning false refuses the configuration: Envoy then rejects it (NACK over xDS, startup
    /// error from a file) and keeps the last good one, if any.
    fn on_configure(&mut self, _size: usize) -> bool {
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
            return true;
        }
        match Config::from_json(&bytes).and_then(|c| Engine::compile(&c)) {
            Ok(engine) => {
                let (ingress, egress) = engine.rule_counts();
                let who = engine.endpoint().map(|e| format!("{}/{}", e.namespace, e.name)).unwrap_or_default();
                log::info!("l7gate: configured for {who}: {ingress} ingress and {egress} egress rules");
                self.engine = Rc::new(engine);
                true
            }
            Err(e) => {
                log::error!("l7gate: refusing the configuration: {e}");
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http::new(Rc::clone(&self.engine))))
    }
}
