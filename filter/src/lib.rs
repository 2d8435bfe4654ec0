//! l7gate's data plane. The library half (config schema, CIDRs, FQDN matching, the policy engine)
//! is portable Rust, unit-tested natively and on wasm32, and reused by the control plane for
//! `trace`. The proxy-wasm glue in [`wasm`] exists only on wasm32.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod cidr;
pub mod config;
pub mod dns;
pub mod engine;
pub mod fasthash;
pub mod flowlog;
pub mod fqdn;
pub mod headermap;
pub mod metrics;
pub mod role;

// The glue needs Envoy's host imports, so it is left out of the (wasm32) unit-test build.
#[cfg(all(target_arch = "wasm32", not(test)))]
mod wasm;

#[cfg(test)]
mod allocation_tests;
