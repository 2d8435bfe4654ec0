//! Every hostcall the filter makes, in one place, none of which can panic (a panic kills the VM
//! on that worker): each calls the proxy-wasm ABI directly and turns every failure into
//! `None`/`false`, which callers treat as deny.

use std::net::{IpAddr, SocketAddr};
use std::ptr::null_mut;

const STATUS_OK: u32 = 0;
const STATUS_NOT_FOUND: u32 = 1;
/// `MapType::HttpRequestHeaders` in the ABI.
const MAP_HTTP_REQUEST_HEADERS: u32 = 0;
/// `BufferType::UpstreamData` and `BufferType::PluginConfiguration` in the ABI.
const BUFFER_UPSTREAM_DATA: u32 = 3;
const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
/// `MetricType::Counter` and `MetricType::Gauge` in the ABI.
const METRIC_COUNTER: u32 = 0;
const METRIC_GAUGE: u32 = 1;
/// `StreamType::Downstream` and `StreamType::Upstream` in the ABI.
const STREAM_DOWNSTREAM: u32 = 2;
const STREAM_UPSTREAM: u32 = 3;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: u32,
        value: *mut *mut u8,
        value_size: *mut usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_log(level: u32, message: *const u8, message_size: usize) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        value: *mut *mut u8,
        value_size: *mut usize,
    ) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_close_stream(stream_type: u32) -> u32;
    fn proxy_set_property(
        path: *const u8,
        path_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        value: *mut *mut u8,
        value_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status_code: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

/// Writes one line to Envoy's log (`level`: the ABI's 0 trace … 5 critical).
pub fn log(level: u32, message: &str) {
    // SAFETY: plain ABI call with a valid pointer to a live buffer.
    unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

/// Takes ownership of a host-returned buffer (allocated by [`super::abi`]'s exported allocator).
fn owned(status: u32, data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if status != STATUS_OK {
        return None;
    }
    if data.is_null() {
        return Some(Vec::new());
    }
    // SAFETY: the host wrote `size` bytes into a buffer it obtained from this module's allocator
    // (`proxy_on_memory_allocate`, a `Vec<u8>` of exactly `size` capacity).
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Every request header (pseudo-headers included) in the ABI's map encoding, in one hostcall;
/// read it with [`crate::headermap::HeaderMap`].
pub fn request_headers() -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: plain ABI call with valid pointers to locals.
    let status =
        unsafe { proxy_get_header_map_pairs(MAP_HTTP_REQUEST_HEADERS, &mut data, &mut size) };
    owned(status, data, size)
}

/// Adds a request header value (`replace == false`: existing values of the name stay) or sets
/// the header to this one value (`replace == true`: adding it if missing); `false` if the host
/// refused.
pub fn put_request_header(name: &str, value: &[u8], replace: bool) -> bool {
    let call = if replace { proxy_replace_header_map_value } else { proxy_add_header_map_value };
    // SAFETY: plain ABI call with valid pointers to live buffers.
    let status = unsafe {
        call(MAP_HTTP_REQUEST_HEADERS, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    };
    status == STATUS_OK
}

/// Removes every value of a request header; `false` if the host refused.
pub fn remove_request_header(name: &str) -> bool {
    // SAFETY: plain ABI call with a valid pointer to a live buffer.
    let status = unsafe {
        proxy_remove_header_map_value(MAP_HTTP_REQUEST_HEADERS, name.as_ptr(), name.len())
    };
    status == STATUS_OK
}

/// A property by its path in the ABI's encoding, segments joined by NUL (`"source\0address"`):
/// a constant, so a request pays for no path building.
fn property(encoded: &str) -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: plain ABI call with valid pointers to locals.
    let status =
        unsafe { proxy_get_property(encoded.as_ptr(), encoded.len(), &mut data, &mut size) };
    owned(status, data, size).filter(|v| !v.is_empty())
}

/// The host's wall clock in nanoseconds (wasm32-unknown-unknown has no clock of its own).
pub fn now_nanos() -> Option<u64> {
    let mut t = 0u64;
    // SAFETY: plain ABI call with a valid pointer to a local.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut t) };
    (status == STATUS_OK).then_some(t)
}

/// The plugin configuration bytes (empty when none was given).
pub fn plugin_configuration() -> Result<Vec<u8>, String> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: plain ABI call with valid pointers to locals.
    let status = unsafe {
        proxy_get_buffer_bytes(BUFFER_PLUGIN_CONFIGURATION, 0, usize::MAX, &mut data, &mut size)
    };
    match status {
        STATUS_NOT_FOUND => Ok(Vec::new()),
        _ => owned(status, data, size).ok_or_else(|| {
            format!("reading the plugin configuration failed with host status {status}")
        }),
    }
}

/// The upstream data a network filter holds: everything received and not yet passed on.
pub fn upstream_data(size: usize) -> Option<Vec<u8>> {
    let (mut data, mut size_out) = (null_mut(), 0usize);
    // SAFETY: plain ABI call with valid pointers to locals.
    let status =
        unsafe { proxy_get_buffer_bytes(BUFFER_UPSTREAM_DATA, 0, size, &mut data, &mut size_out) };
    owned(status, data, size_out)
}

/// Replaces the first `size` bytes of the upstream data with `value`.
pub fn replace_upstream_data(size: usize, value: &[u8]) -> bool {
    // SAFETY: plain ABI call with a valid pointer to a live buffer.
    let status = unsafe {
        proxy_set_buffer_bytes(BUFFER_UPSTREAM_DATA, 0, size, value.as_ptr(), value.len())
    };
    status == STATUS_OK
}

/// The connection's peer address (`source.address`, "ip:port").
pub fn source_address() -> Option<SocketAddr> {
    socket_address(&property("source\0address")?)
}

/// The connection's local address (`destination.address`, "ip:port"): the port decides which
/// rules apply.
pub fn local_address() -> Option<SocketAddr> {
    socket_address(&property("destination\0address")?)
}

/// An address property: "ip:port", or a bare IP (port 0).
fn socket_address(raw: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(raw).ok()?;
    text.parse::<SocketAddr>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0)))
}

/// A string of the Envoy node's metadata (`xds.node.metadata.<key>`, from the bootstrap's
/// `node.metadata`); `None` when absent.
pub fn node_metadata(key: &str) -> Option<String> {
    let path = format!("xds\0node\0metadata\0{key}");
    property(&path).and_then(|v| String::from_utf8(v).ok())
}

/// `PluginConfig.root_id` of the plugin this root context serves (`plugin_root_id`; empty when
/// none was configured).
pub fn plugin_root_id() -> String {
    property("plugin_root_id").map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default()
}

/// The TLS server name (SNI) the client sent, as `tls_inspector` read it from the ClientHello
/// (`connection.requested_server_name`); `None` when there was none.
pub fn requested_server_name() -> Option<Vec<u8>> {
    property("connection\0requested_server_name")
}

/// Closes the downstream connection (a network filter's connection). Envoy closes it after the
/// current callback returns.
pub fn close_downstream() -> bool {
    // SAFETY: plain ABI call without pointers.
    let status = unsafe { proxy_close_stream(STREAM_DOWNSTREAM) };
    status == STATUS_OK
}

/// Closes a network filter's upstream connection (after the current callback returns).
pub fn close_upstream() -> bool {
    // SAFETY: plain ABI call without pointers.
    let status = unsafe { proxy_close_stream(STREAM_UPSTREAM) };
    status == STATUS_OK
}

/// Stores `value` in the stream's filter state under `wasm.<key>` (the access log reads it with
/// `%FILTER_STATE(wasm.<key>:PLAIN)%`). Only a stream context may call it.
pub fn set_property(key: &str, value: &[u8]) -> bool {
    // SAFETY: plain ABI call with valid pointers to live buffers.
    let status =
        unsafe { proxy_set_property(key.as_ptr(), key.len(), value.as_ptr(), value.len()) };
    status == STATUS_OK
}

/// Defines a counter (Envoy stat `<name>` in its `wasmcustom` namespace); `None` if refused.
pub fn define_counter(name: &str) -> Option<u32> {
    define_metric(METRIC_COUNTER, name)
}

/// Defines a gauge; `None` if refused.
pub fn define_gauge(name: &str) -> Option<u32> {
    define_metric(METRIC_GAUGE, name)
}

fn define_metric(metric_type: u32, name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: plain ABI call with valid pointers to a live buffer and a local.
    let status = unsafe { proxy_define_metric(metric_type, name.as_ptr(), name.len(), &mut id) };
    (status == STATUS_OK).then_some(id)
}

/// Adds `delta` to a counter or gauge.
pub fn increment_metric(id: u32, delta: i64) -> bool {
    // SAFETY: plain ABI call without pointers.
    let status = unsafe { proxy_increment_metric(id, delta) };
    status == STATUS_OK
}

/// Sets a gauge.
pub fn record_metric(id: u32, value: u64) -> bool {
    // SAFETY: plain ABI call without pointers.
    let status = unsafe { proxy_record_metric(id, value) };
    status == STATUS_OK
}

/// Sends a local reply. `details` shows up as Envoy's `%RESPONSE_CODE_DETAILS%`.
pub fn send_local_response(
    status: u32,
    details: &str,
    headers: &[(&[u8], &[u8])],
    body: &[u8],
) -> bool {
    let headers = crate::headermap::serialize(headers);
    // SAFETY: plain ABI call with valid pointers to live buffers.
    let result = unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    };
    result == STATUS_OK
}
