//! proxy-wasm glue (wasm32 only): registers the root context. Everything Envoy-specific lives in
//! this module; the engine it drives is the portable library.

mod host;
mod http;
mod observe;
mod root;
mod tls;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(root::Root::new()) });
}}
