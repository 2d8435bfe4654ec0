//! Building blocks for running l7gate for real: tool discovery, upstream
//! servers, clients bound to a workload's source address, Envoy sidecars, the `l7gate serve`
//! process, and the seed cluster.

pub mod client;
pub mod cluster;
pub mod control;
pub mod envoy;
pub mod tools;
pub mod upstream;
