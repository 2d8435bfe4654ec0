//! l7gate's control plane: Cilium policies + endpoint inventory in, per-endpoint filter
//! configurations out. Stages, one module each: `cilium` (parse, validate) → `inventory` →
//! `identity` → `resolve` → `compile` → `ecds` (delivery to Envoy); `trace` explains verdicts
//! with the filter's own engine (`engines` keeps one per endpoint); `policy_test` reads and runs
//! policy tests through it; `flow` reads the flow log; `diff` compares two policy sets and
//! replays recorded flows through both; `suggest` turns recorded flows into policies; `xds`
//! serves the configs to Envoys over ADS, following file changes (`watch`) or the Kubernetes API
//! (`kubernetes`), wired together by `runtime`; `cli` is the `l7gate` command.
//! `ecds`, `xds`, `watch`, `kubernetes`, `runtime` and `cli` are the feature `cli` (default):
//! without it the crate is the policy pipeline alone, with none of the server's dependencies.

pub mod cilium;
#[cfg(feature = "cli")]
pub mod cli;
pub mod compile;
pub mod diag;
pub mod diff;
#[cfg(feature = "cli")]
pub mod ecds;
pub mod engines;
pub mod envoy_path;
pub mod flow;
pub mod identity;
pub mod inventory;
#[cfg(feature = "cli")]
pub mod kubernetes;
pub mod policy_test;
pub mod resolve;
#[cfg(feature = "cli")]
pub mod runtime;
pub mod suggest;
pub mod trace;
#[cfg(feature = "cli")]
pub mod watch;
#[cfg(feature = "cli")]
pub mod xds;
mod yaml;

use std::fmt;
use std::path::Path;

use compile::Cluster;
use diag::{Diagnostic, Diagnostics};

/// Why inputs could not be loaded or compiled.
#[derive(Debug)]
pub enum Error {
    /// Problems in the input files, all of them, located.
    Input(Diagnostics),
    /// Anything else (unknown endpoint, ...), as a message.
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input(d) => d.fmt(f),
            Error::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// Valid inputs, ready to compile, and the warnings found on the way.
pub struct Loaded {
    pub cluster: Cluster,
    pub warnings: Vec<Diagnostic>,
    /// Documents skipped as not being policies (`cilium::parse::Loaded::notes`).
    pub notes: Vec<Diagnostic>,
}

/// Loads and validates policies (a file or a directory) and the inventory. Errors of both are
/// reported together; nothing is returned unless everything is valid.
pub fn load(policies: &Path, endpoints: &Path) -> Result<Loaded, Error> {
    assemble(cilium::parse::load_path(policies), inventory::load(endpoints))
}

/// Puts parsed policies and an inventory together (from files, or from the Kubernetes API);
/// errors of both are reported together.
pub fn assemble(
    policies: Result<cilium::parse::Loaded, Diagnostics>,
    inventory: Result<inventory::Inventory, Diagnostics>,
) -> Result<Loaded, Error> {
    match (policies, inventory) {
        (Ok(p), Ok(i)) => Ok(Loaded {
            cluster: Cluster::new(p.policies, i),
            warnings: p.warnings,
            notes: p.notes,
        }),
        (p, i) => {
            let mut all = Diagnostics::default();
            if let Err(e) = p {
                all.extend(e);
            }
            if let Err(e) = i {
                all.extend(e);
            }
            Err(Error::Input(all.sorted()))
        }
    }
}

/// The filter configuration of one endpoint (what `l7gate compile` prints).
pub fn compile_endpoint(
    policies: &Path,
    endpoints: &Path,
    endpoint: &str,
) -> Result<l7gate_filter::config::Config, Error> {
    let loaded = load(policies, endpoints)?;
    let cluster = loaded.cluster;
    cluster.endpoint(endpoint).and_then(|e| cluster.compile(e)).map_err(Error::Other)
}
