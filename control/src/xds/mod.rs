//! The ADS side of `l7gate serve`: pushes compiled filter configs to Envoys (ECDS resources).
//! `cache` holds per-endpoint snapshots and per-node ACK/NACK state; `server` speaks the ADS
//! protocol over the cache only; `snapshot` turns a validated cluster into snapshots; `report`
//! is the status document and `status` serves it over HTTP; `authz` and `tls` guard the control
//! channel. `crate::runtime` wires them to the watchers.

pub mod authz;
pub mod cache;
pub mod report;
pub mod server;
pub mod snapshot;
pub mod status;
pub mod tls;
