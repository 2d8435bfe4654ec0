//! Makes every decision visible: publishes its flow record as filter state (for the access log)
//! and increments its counter. What depends only on the configuration — record parts, counter
//! ids, the configuration gauges — is prepared in [`Observer::configure`]; a request appends
//! its values to a reused buffer and makes two hostcalls. Every [`MEMORY_EVERY`] decisions the
//! VM's linear memory size goes to the `l7gate.vm_memory_bytes` gauge (Envoy has no stat for
//! it). Failures are logged and never change a verdict.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::host;
use crate::config::Config;
use crate::engine::Direction;
use crate::flowlog::{Decision, FlowLog, FILTER_STATE_KEY};
use crate::metrics::{config_hash, Metrics};
use crate::role::Role;

/// How many decisions pass between two updates of the VM memory gauge.
const MEMORY_EVERY: u32 = 1024;

/// The flow-record parts and counters of the configuration in force.
#[derive(Default)]
pub struct Observer {
    flowlog: FlowLog,
    metrics: Metrics,
    /// The record being built (one request at a time per VM).
    buffer: RefCell<String>,
    /// The `l7gate.vm_memory_bytes` gauge, and decisions since it was last set.
    memory_gauge: Option<u32>,
    since_memory: Cell<u32>,
    /// The DNS guard's `l7gate.dns_dropped_answers` counter (that role only).
    dropped_answers: Option<u32>,
}

impl Observer {
    /// Prepares the records and counters of `config` and sets the configuration gauges.
    pub fn configure(
        config: &Config,
        bytes: &[u8],
        role: Role,
        registry: &mut Registry,
    ) -> Observer {
        let metrics = Metrics::define(config, registry);
        registry.generation += 1;
        let gauges = [
            ("l7gate.config_hash".to_string(), config_hash(bytes)),
            ("l7gate.config_generation".to_string(), registry.generation),
            (
                format!("l7gate.rules.direction={}", Direction::Ingress),
                config.ingress.rules.len() as u64,
            ),
            (
                format!("l7gate.rules.direction={}", Direction::Egress),
                config.egress.rules.len() as u64,
            ),
        ];
        for (name, value) in gauges {
            if !registry.gauge(&name).is_some_and(|id| host::record_metric(id, value)) {
                log::warn!("l7gate: could not set the gauge {name}");
            }
        }
        let observer = Observer {
            flowlog: FlowLog::new(config),
            metrics,
            buffer: RefCell::new(String::with_capacity(1024)),
            memory_gauge: registry.gauge("l7gate.vm_memory_bytes"),
            since_memory: Cell::new(0),
            dropped_answers: (role == Role::EgressDns)
                .then(|| crate::metrics::Host::counter(registry, "l7gate.dns_dropped_answers"))
                .flatten(),
        };
        observer.record_memory();
        observer
    }

    /// Sets the VM memory gauge to the linear memory's current size (it never shrinks).
    fn record_memory(&self) {
        let bytes = core::arch::wasm32::memory_size::<0>() as u64 * 65536;
        if !self.memory_gauge.is_some_and(|id| host::record_metric(id, bytes)) {
            log::debug!("l7gate: could not set the VM memory gauge");
        }
    }

    /// Without a configuration: only the counters of decisions without a rule.
    pub fn unconfigured(registry: &mut Registry) -> Observer {
        Observer { metrics: Metrics::defaults(registry), ..Observer::default() }
    }

    /// Publishes one decision.
    pub fn publish(&self, d: &Decision<'_>) {
        self.count(self.metrics.counter(d.direction, d.verdict));
        for r in &d.verdict.rewrites {
            self.count(self.metrics.action_counter(d.direction, r));
        }
        let since = self.since_memory.get() + 1;
        self.since_memory.set(if since >= MEMORY_EVERY { 0 } else { since });
        if since >= MEMORY_EVERY {
            self.record_memory();
        }
        let Ok(mut buffer) = self.buffer.try_borrow_mut() else {
            return log::warn!("l7gate: flow record buffer busy; record dropped");
        };
        self.flowlog.write(d, &mut buffer);
        if !host::set_property(FILTER_STATE_KEY, buffer.as_bytes()) {
            log::warn!("l7gate: could not publish the flow record");
        }
    }

    /// Counts addresses the DNS guard took out of answers.
    pub fn dropped_answers(&self, n: usize) {
        let counted = self
            .dropped_answers
            .is_some_and(|id| host::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX)));
        if !counted {
            log::debug!("l7gate: no counter for dropped DNS answers");
        }
    }

    /// Counts a request denied before the engine could decide (no address).
    pub fn no_address(&self, direction: Direction) {
        self.count(self.metrics.no_address(direction));
    }

    fn count(&self, id: Option<u32>) {
        if !id.is_some_and(|id| host::increment_metric(id, 1)) {
            log::debug!("l7gate: no verdict counter for a decision");
        }
    }
}

/// The metrics this VM defined, by name: a name is defined once for the VM's life, however
/// often the configuration changes.
#[derive(Default)]
pub struct Registry {
    counters: HashMap<String, u32>,
    gauges: HashMap<String, u32>,
    /// Configurations accepted so far (the `l7gate.config_generation` gauge).
    generation: u64,
}

impl Registry {
    fn gauge(&mut self, name: &str) -> Option<u32> {
        defined(&mut self.gauges, name, host::define_gauge)
    }
}

impl crate::metrics::Host for Registry {
    fn counter(&mut self, name: &str) -> Option<u32> {
        defined(&mut self.counters, name, host::define_counter)
    }
}

fn defined(
    known: &mut HashMap<String, u32>,
    name: &str,
    define: fn(&str) -> Option<u32>,
) -> Option<u32> {
    if let Some(id) = known.get(name) {
        return Some(*id);
    }
    let id = define(name)?;
    known.insert(name.to_string(), id);
    Some(id)
}
