//! Building blocks for running l7gate for real: tool discovery, upstream
//! servers, clients bound to a workload's source address, Envoy sidecars, the `l7gate serve`
//! process, the seed cluster, and Tomcat as an application that normalises paths further; for egress, a DNS server, TLS on both ends, and the egress Envoy.

pub mod background;
pub mod client;
pub mod cluster;
pub mod control;
pub mod dns;
pub mod egress;
pub mod envoy;
pub mod kube_api;
pub mod tls;
pub mod tomcat;
pub mod tools;
pub mod upstream;
