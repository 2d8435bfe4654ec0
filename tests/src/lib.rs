//! l7gate end-to-end harness: the real Envoy with the real l7gate wasm filter, real HTTP
//! upstreams and clients on loopback, and the seed scenario that both the demo binary
//! (`l7gate-demo`) and the e2e tests (`tests/seed.rs`) run.

pub mod compose;
pub mod harness;
pub mod scenario;
