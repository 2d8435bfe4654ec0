//! The Envoys under test: one per variant (no filter, native RBAC, l7gate), each with
//! `--concurrency 1` and two listeners on port 8080 of their own loopback addresses — one
//! answering with a direct response, one proxying to a shared upstream Envoy that answers
//! directly. The HCM settings are the sidecar's (`envoy/sidecar.yaml`) minus the access log; the
//! l7gate filter gets its config from an ECDS file rendered by `l7gate::ecds`, as the sidecar does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use l7gate_filter::headermap::{CONNECTION_HEADER, CONNECTION_HEADER_KEY};

use crate::cpu::Cpu;

/// The port the policies name (the filter reads the listener's local port).
pub const PORT: u16 = 8080;
const UPSTREAM: &str = "127.0.0.60";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    NoFilter,
    Rbac,
    L7gate,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::NoFilter, Variant::Rbac, Variant::L7gate];

    pub fn name(self) -> &'static str {
        match self {
            Variant::NoFilter => "no-filter",
            Variant::Rbac => "rbac",
            Variant::L7gate => "l7gate",
        }
    }

    fn octet(self) -> u8 {
        match self {
            Variant::NoFilter => 1,
            Variant::Rbac => 2,
            Variant::L7gate => 3,
        }
    }

    /// Where this variant listens: `direct` answers itself, otherwise it proxies.
    pub fn address(self, direct: bool) -> String {
        format!("127.0.0.{}{}", if direct { 4 } else { 5 }, self.octet())
    }
}

/// A running Envoy, killed when dropped.
pub struct Envoy {
    child: Child,
    pub admin: SocketAddr,
    pub log: PathBuf,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Envoy {
    /// Starts `envoy` with `bootstrap` (JSON) in `dir` on `cpu` and waits until admin says LIVE.
    pub fn start(
        envoy: &Path,
        dir: &Path,
        name: &str,
        bootstrap: &Value,
        cpu: Cpu,
    ) -> Result<Envoy, String> {
        let config = dir.join(format!("{name}.json"));
        let admin_file = dir.join(format!("{name}.admin"));
        let log = dir.join(format!("{name}.log"));
        let _ = std::fs::remove_file(&admin_file);
        std::fs::write(&config, format!("{bootstrap:#}"))
            .map_err(|e| format!("{}: {e}", config.display()))?;
        let child = cpu
            .command(envoy)
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", "1", "--disable-hot-restart", "-l", "info"])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--log-path")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", envoy.display()))?;
        let mut envoy = Envoy { child, admin: SocketAddr::from(([127, 0, 0, 1], 0)), log };
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                return Err(format!(
                    "{name}: Envoy exited ({status}); see {}",
                    envoy.log.display()
                ));
            }
            if let Some(admin) =
                std::fs::read_to_string(&admin_file).ok().and_then(|a| a.trim().parse().ok())
            {
                envoy.admin = admin;
                if get(admin, "/ready").is_ok_and(|(_, body)| body.contains("LIVE")) {
                    return Ok(envoy);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("{name}: Envoy not ready in time; see {}", envoy.log.display()))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// One HTTP/1.1 GET (connection closed after), returning the status and body.
pub fn get(to: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .map_err(|e| format!("{to}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad reply from {to}: {out:?}"))?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A KiB field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn hcm(name: &str, route: Value, filters: &[Value], early: &[Value]) -> Value {
    let mut http_filters = filters.to_vec();
    http_filters.push(json!({"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}));
    json!({"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": name, "codec_type": "AUTO", "use_remote_address": true, "xff_num_trusted_hops": 0,
        "normalize_path": true, "merge_slashes": true, "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
        "early_header_mutation_extensions": early,
        "common_http_protocol_options": {"headers_with_underscores_action": "REJECT_REQUEST"},
        "route_config": {"name": name, "request_headers_to_remove": [CONNECTION_HEADER],
            "virtual_hosts": [{"name": "app", "domains": ["*"], "routes": [route]}]},
        "http_filters": http_filters}})
}

fn listener(name: &str, address: &str, route: Value, filters: &[Value], early: &[Value]) -> Value {
    json!({"name": name, "address": {"socket_address": {"address": address, "port_value": PORT}},
           "filter_chains": [{"filters": [hcm(name, route, filters, early)]}]})
}

fn direct_route() -> Value {
    json!({"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}})
}

fn admin() -> Value {
    json!({"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}})
}

/// The upstream every proxied listener forwards to: answers 200 directly.
pub fn upstream_bootstrap() -> Value {
    json!({"node": {"id": "upstream", "cluster": "bench"}, "admin": admin(),
           "static_resources": {"listeners": [listener("upstream", UPSTREAM, direct_route(), &[], &[])]}})
}

/// A variant's bootstrap with the given HTTP filters (before the router).
pub fn bootstrap(variant: Variant, filters: &[Value]) -> Value {
    let proxied = json!({"match": {"prefix": "/"}, "route": {"cluster": "app"}});
    // As envoy/sidecar.yaml: for l7gate, Envoy sets the connection header and the node names it.
    let (metadata, early) = match variant {
        Variant::L7gate => {
            (json!({CONNECTION_HEADER_KEY: CONNECTION_HEADER}), vec![connection_header()])
        }
        _ => (json!({}), vec![]),
    };
    json!({"node": {"id": variant.name(), "cluster": "bench", "metadata": metadata}, "admin": admin(),
        "static_resources": {
            "listeners": [
                listener("direct", &variant.address(true), direct_route(), filters, &early),
                listener("proxied", &variant.address(false), proxied, filters, &early),
            ],
            "clusters": [{"name": "app", "type": "STATIC", "connect_timeout": "2s",
                "load_assignment": {"cluster_name": "app", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": UPSTREAM, "port_value": PORT}}}}]}]}}]}})
}

/// The HCM's early header mutation that sets the connection header (as in envoy/sidecar.yaml).
fn connection_header() -> Value {
    json!({"name": "envoy.http.early_header_mutation.header_mutation", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
        "mutations": [{"append": {
            "header": {"key": CONNECTION_HEADER, "value": "%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS%"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}]}})
}

/// The l7gate filter, configured from the ECDS file at `path` (as `envoy/sidecar.yaml` does).
pub fn l7gate_filter(path: &Path) -> Value {
    json!({"name": "l7gate", "config_discovery": {
        "config_source": {"path_config_source": {"path": path}, "resource_api_version": "V3"},
        "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}})
}

/// The filter's own configure timings from the Envoy log ("... rules in N us"), one per VM.
pub fn configure_micros(log: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(" configured for ") && l.contains(" rules in "))
        .filter_map(|l| l.rsplit_once(" in ")?.1.strip_suffix(" us")?.trim().parse().ok())
        .collect()
}
