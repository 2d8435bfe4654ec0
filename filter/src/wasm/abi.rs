//! The proxy-wasm ABI 0.2.1 entry points Envoy calls, exported here directly rather than through
//! the SDK's dispatcher. Envoy skips every callback a module does not export, and the SDK exports
//! them all, so with it each request entered the VM six times or more (create, request and
//! response headers, bodies, log, done, delete); this module exports only what l7gate uses: an
//! HTTP request costs three entries (create, request headers, delete), a TLS connection four
//! and one per data chunk, a DNS guard connection one more per upstream chunk. The context table maps each stream to the plugin configuration in
//! force when it was created, so in-flight streams keep their configuration when a new one
//! arrives. Nothing here panics: an unknown context is denied.

use std::cell::RefCell;

use super::root::{Root, Stream};
use super::{http::Http, tls::Tls};
use crate::fasthash::FastMap;

/// ABI values of `FilterHeadersStatus`/`FilterStatus`/`FilterDataStatus`.
const CONTINUE: u32 = 0;
const PAUSE: u32 = 1;

type ById<T> = FastMap<u32, T>;

#[derive(Default)]
struct Contexts {
    /// One per plugin configuration (Envoy creates a new one for each config it accepts).
    roots: ById<Root>,
    streams: ById<Stream>,
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts::default());
}

/// Runs `f` on the context table; `None` if it is busy (never expected: the host does not
/// re-enter the VM from a hostcall).
fn with<R>(f: impl FnOnce(&mut Contexts) -> R) -> Option<R> {
    CONTEXTS.with(|c| c.try_borrow_mut().ok().map(|mut c| f(&mut c)))
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The allocator the host uses for every buffer it returns; [`host`] takes them back as
/// `Vec<u8>` of exactly this capacity.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer = std::mem::ManuallyDrop::new(Vec::<u8>::with_capacity(size));
    buffer.as_mut_ptr()
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_id: u32) {
    with(|c| {
        if parent_id == 0 {
            super::logger::install();
            c.roots.insert(context_id, Root::new());
            return;
        }
        let Some(root) = c.roots.get(&parent_id) else {
            return log::error!("l7gate: context {context_id} has no known root context {parent_id}; it will be denied");
        };
        c.streams.insert(context_id, root.stream());
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

/// Returning 0 refuses the configuration: Envoy then rejects it (NACK over xDS, startup error
/// from a file) and keeps the last good one, if any.
#[no_mangle]
pub extern "C" fn proxy_on_configure(root_id: u32, _plugin_configuration_size: usize) -> u32 {
    let accepted = with(|c| c.roots.get_mut(&root_id).map(Root::configure)).flatten();
    u32::from(accepted == Some(true))
}

/// The ABI status of a decision: continue when allowed; pause when denied (the denial is sent
/// or the connection closed) and, after `deny_unknown`, when the context is unknown.
fn status(allowed: Option<Option<bool>>, deny_unknown: impl FnOnce()) -> u32 {
    match allowed.flatten() {
        Some(true) => CONTINUE,
        Some(false) => PAUSE,
        None => {
            deny_unknown();
            PAUSE
        }
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _headers: usize,
    _end_of_stream: u32,
) -> u32 {
    let allowed = with(|c| match c.streams.get(&context_id) {
        Some(Stream::Http(http)) => Some(http.on_request_headers()),
        _ => None,
    });
    status(allowed, Http::deny_unknown_context)
}

#[no_mangle]
pub extern "C" fn proxy_on_new_connection(context_id: u32) -> u32 {
    let allowed = with(|c| match c.streams.get_mut(&context_id) {
        Some(Stream::Tls(tls)) => Some(tls.on_new_connection()),
        Some(Stream::Dns(dns)) => Some(dns.on_new_connection()),
        _ => None,
    });
    status(allowed, || Tls::close("l7gate: closing a connection of an unknown context"))
}

/// Data of a denied TLS connection, or of a closed DNS guard connection, is held until Envoy
/// closes it.
#[no_mangle]
pub extern "C" fn proxy_on_downstream_data(
    context_id: u32,
    _data_size: usize,
    _end_of_stream: u32,
) -> u32 {
    let allowed = with(|c| match c.streams.get(&context_id) {
        Some(Stream::Tls(tls)) => !tls.denied(),
        Some(Stream::Dns(dns)) => !dns.closed(),
        _ => false,
    });
    pass(allowed)
}

/// The resolver's answers, rewritten by the DNS guard; any other stream's upstream data passes
/// (only the guard is ever configured on a connection with an upstream the filter watches).
#[no_mangle]
pub extern "C" fn proxy_on_upstream_data(context_id: u32, data_size: usize, _end: u32) -> u32 {
    let allowed = with(|c| match c.streams.get_mut(&context_id) {
        Some(Stream::Dns(dns)) => dns.on_upstream_data(data_size),
        Some(Stream::Tls(tls)) => !tls.denied(),
        _ => false,
    });
    pass(allowed)
}

/// The ABI status of a data callback: continue only when the stream lets its data pass.
fn pass(allowed: Option<bool>) -> u32 {
    if allowed == Some(true) {
        CONTINUE
    } else {
        PAUSE
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    with(|c| {
        if c.streams.remove(&context_id).is_none() {
            c.roots.remove(&context_id);
        }
    });
}
