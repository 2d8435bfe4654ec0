//! The filter's `Engine` of each endpoint of one policy set, compiled on first use and kept, for
//! the offline commands that judge many requests (`trace`, `test`, `diff`'s replay).

use std::collections::hash_map::{Entry, HashMap};

use l7gate_filter::engine::Engine;

use crate::compile::Cluster;
use crate::identity::qualified;
use crate::inventory::Endpoint;

/// One policy set's engines, by the endpoint's `namespace/name`.
pub struct Engines<'c> {
    pub cluster: &'c Cluster,
    compiled: HashMap<String, Engine>,
}

impl<'c> Engines<'c> {
    pub fn new(cluster: &'c Cluster) -> Self {
        Engines { cluster, compiled: HashMap::new() }
    }

    /// The engine of `endpoint`, compiling its configuration the first time.
    pub fn of(&mut self, endpoint: &Endpoint) -> Result<&Engine, String> {
        Ok(match self.compiled.entry(qualified(endpoint)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(Engine::compile(&self.cluster.compile(endpoint)?)?),
        })
    }

    /// The engine of the endpoint named `name` (`name` or `namespace/name`).
    pub fn named(&mut self, name: &str) -> Result<&Engine, String> {
        let endpoint = self.cluster.endpoint(name)?;
        self.of(endpoint)
    }
}
