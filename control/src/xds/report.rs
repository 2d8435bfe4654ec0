//! The `GET /status` document of `l7gate serve`: reload state, and per node what was pushed,
//! acked and rejected. The cache fills the node part, the watcher the reload part, `status`
//! serves it, and [`fetch`] reads it back for `l7gate status`. Data only, so the cache and the
//! HTTP side both depend on it and not on each other.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// The whole `GET /status` document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub reload: ReloadStatus,
    /// Every Envoy seen since the server started, by node id.
    pub nodes: Vec<NodeStatus>,
}

/// Where the inputs stand.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReloadStatus {
    /// Counts accepted input states; 0 until the inputs were valid once.
    pub generation: u64,
    /// Endpoints whose configuration changed in the last accepted reload.
    pub last_changed: Vec<String>,
    /// Why the inputs on disk are not in force (rendered diagnostics), if they are not.
    pub error: Option<String>,
}

/// One Envoy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The Envoy node id.
    pub node: String,
    /// The endpoint whose configuration it gets (node id or `node.metadata["l7gate.endpoint"]`).
    pub endpoint: String,
    /// Whether an ADS stream of this node is open now.
    pub connected: bool,
    /// Why this node gets nothing (e.g. an endpoint the inventory does not have).
    pub error: Option<String>,
    pub resources: Vec<ResourceStatus>,
}

/// One resource of one Envoy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceStatus {
    pub type_url: String,
    pub name: String,
    /// The version the control plane has for it now.
    pub current: Option<String>,
    /// Responses sent with it (since this server started).
    pub pushes: u64,
    /// The last version the Envoy accepted (since this server started).
    pub acked: Option<String>,
    /// Sent, neither accepted nor rejected yet.
    pub pending: Option<String>,
    pub last_nack: Option<NackInfo>,
}

/// A rejected version and Envoy's reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NackInfo {
    pub version: String,
    /// Envoy's `error_detail.message`, verbatim.
    pub message: String,
    pub at_unix_ms: u64,
}

/// Shared, updated by the watcher.
pub type Reloads = Arc<Mutex<ReloadStatus>>;

/// Fetches the report from a running server (`l7gate status`): a plain HTTP/1.1 GET.
pub fn fetch(server: SocketAddr) -> Result<StatusReport, String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&server, std::time::Duration::from_secs(5))
            .map_err(|e| format!("cannot reach l7gate serve at {server}: {e}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(stream, "GET /status HTTP/1.1\r\nhost: {server}\r\nconnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| format!("reading the status from {server}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| format!("{server}: not an HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{server}: {}", head.lines().next().unwrap_or_default()));
    }
    serde_json::from_str(body).map_err(|e| format!("{server}: not an l7gate status document: {e}"))
}
