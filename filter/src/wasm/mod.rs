//! proxy-wasm glue (wasm32 only): the exported entry points (`abi`), every hostcall (`host`),
//! and the contexts they drive. Everything Envoy-specific lives in this module; the engine it
//! drives is the portable library.

mod abi;
mod dns;
mod host;
mod http;
mod logger;
mod observe;
mod plugin;
mod root;
mod tls;
