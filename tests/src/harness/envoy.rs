//! One Envoy sidecar process: renders `envoy/sidecar.yaml` and writes the l7gate filter config
//! as the ECDS file Envoy watches, or renders `envoy/sidecar-ads.yaml` (config from
//! `l7gate serve` over ADS); spawns Envoy with its own admin port and log file, waits until
//! admin `/ready` says LIVE and the listener accepts, and kills it on drop. When dropped during a
//! panic it prints the tail of Envoy's log and keeps its directory for inspection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use l7gate_filter::config::{Config, DirectionPolicy, EndpointRef, SCHEMA_VERSION};

use crate::harness::control::{Xds, SERVER_NAME};
use crate::harness::tools::{repo_root, Tools};

/// Upper bound for Envoy to come up; only a guard against hanging forever, never an assertion.
const START_DEADLINE: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_millis(20);

/// What a sidecar is: the template's placeholders, filled.
#[derive(Debug, Clone)]
pub struct SidecarSpec {
    /// Envoy node id and listener/cluster naming (`${NAME}`).
    pub name: String,
    /// Where the sidecar listens; port 0 lets the kernel pick (read back from admin).
    pub listen: SocketAddr,
    /// The application behind the sidecar.
    pub upstream: SocketAddr,
    /// The l7gate filter config (JSON, schema `l7gate_filter::config`), or deliberately bad
    /// bytes for fail-closed tests.
    pub filter_config_json: String,
}

/// A sidecar configured over ADS: the template's placeholders, filled.
#[derive(Debug, Clone)]
pub struct AdsSidecarSpec {
    /// Envoy node id: the endpoint whose config `l7gate serve` sends.
    pub name: String,
    /// Where the sidecar listens; port 0 lets the kernel pick (read back from admin).
    pub listen: SocketAddr,
    /// The application behind the sidecar.
    pub upstream: SocketAddr,
    /// `l7gate serve --listen`, and the credentials to connect with.
    pub xds: Xds,
}

/// How a start went wrong.
#[derive(Debug)]
pub enum StartError {
    /// Envoy exited before becoming ready (e.g. it rejected its config).
    Exited { status: ExitStatus, log_tail: String },
    /// Envoy stayed up but did not become ready before the deadline.
    NotReady { last_state: String, log_tail: String },
    /// The harness itself failed (template, files, spawn).
    Harness(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Exited { status, log_tail } => {
                write!(f, "Envoy exited during startup ({status}); log tail:\n{log_tail}")
            }
            StartError::NotReady { last_state, log_tail } => write!(
                f,
                "Envoy not ready after {START_DEADLINE:?} (last /ready: {last_state}); log tail:\n{log_tail}"
            ),
            StartError::Harness(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running (or starting) Envoy; killed when dropped.
pub struct Envoy {
    name: String,
    child: Child,
    dir: Option<tempfile::TempDir>,
    wasm: PathBuf,
    admin: Option<SocketAddr>,
    listener: Option<SocketAddr>,
    requested_listen: SocketAddr,
}

impl Envoy {
    /// Spawns Envoy and waits until it is ready.
    pub fn start(tools: &Tools, spec: &SidecarSpec) -> Result<Envoy, StartError> {
        let mut envoy = Envoy::spawn(tools, spec)?;
        envoy.wait_ready()?;
        Ok(envoy)
    }

    /// Spawns Envoy without waiting; call [`Envoy::wait_ready`] (several sidecars can boot at once).
    pub fn spawn(tools: &Tools, spec: &SidecarSpec) -> Result<Envoy, StartError> {
        Envoy::spawn_edited(tools, spec, |bootstrap| bootstrap)
    }

    /// [`Envoy::spawn`] with `edit` applied to the template before rendering (a user's variant).
    pub fn spawn_edited(
        tools: &Tools,
        spec: &SidecarSpec,
        edit: impl Fn(String) -> String,
    ) -> Result<Envoy, StartError> {
        let harness = |e: String| StartError::Harness(format!("sidecar {}: {e}", spec.name));
        let dir = sidecar_dir(&spec.name).map_err(&harness)?;
        let filter_path = dir.path().join("l7gate-filter.yaml");
        write_filter_config(&filter_path, &spec.filter_config_json, &tools.wasm)
            .map_err(&harness)?;
        let values = vec![
            ("FILTER_CONFIG_PATH", filter_path.display().to_string()),
            ("UPSTREAM_ADDRESS", spec.upstream.ip().to_string()),
            ("UPSTREAM_PORT", spec.upstream.port().to_string()),
        ];
        Envoy::launch(tools, dir, &spec.name, spec.listen, "sidecar.yaml", values, edit)
    }

    /// Spawns an Envoy whose filter config comes from `l7gate serve` over ADS
    /// (`envoy/sidecar-ads.yaml`), without waiting. Until the first config arrives the listener
    /// is warming, so [`Envoy::wait_ready`] returns once it did (or after the bootstrap's initial
    /// fetch timeout, without a config: check `update_success`).
    pub fn spawn_ads(tools: &Tools, spec: &AdsSidecarSpec) -> Result<Envoy, StartError> {
        let harness = |e: String| StartError::Harness(format!("sidecar {}: {e}", spec.name));
        let dir = sidecar_dir(&spec.name).map_err(&harness)?;
        let mut values = xds_values(&spec.xds, &spec.name, dir.path()).map_err(&harness)?;
        values.push(("UPSTREAM_ADDRESS", spec.upstream.ip().to_string()));
        values.push(("UPSTREAM_PORT", spec.upstream.port().to_string()));
        Envoy::launch(
            tools,
            dir,
            &spec.name,
            spec.listen,
            "sidecar-ads.yaml",
            values,
            |bootstrap| bootstrap,
        )
    }

    /// Renders `envoy/<template>`, changed by `edit`, in `dir` with the common placeholders plus
    /// `extra`, and runs Envoy on it. `listen` is the listener readiness is checked on.
    pub(crate) fn launch(
        tools: &Tools,
        dir: tempfile::TempDir,
        name: &str,
        listen: SocketAddr,
        template: &str,
        extra: Vec<(&str, String)>,
        edit: impl Fn(String) -> String,
    ) -> Result<Envoy, StartError> {
        let harness = |e: String| StartError::Harness(format!("sidecar {name}: {e}"));
        let template_path = repo_root().join("envoy").join(template);
        let text = edit(
            std::fs::read_to_string(&template_path)
                .map_err(|e| harness(format!("cannot read {}: {e}", template_path.display())))?,
        );
        let mut values = vec![
            ("NAME", name.to_string()),
            ("LISTEN_ADDRESS", listen.ip().to_string()),
            ("LISTEN_PORT", listen.port().to_string()),
            // A free port, not 0: the ADS templates' metrics listener routes to it. Envoy also
            // writes it to --admin-address-path.
            (
                "ADMIN_PORT",
                crate::harness::control::free_port().map_err(&harness)?.port().to_string(),
            ),
            // The ADS templates' metrics listener (found by name: Envoy::metrics_get).
            ("METRICS_ADDRESS", "127.0.0.1".to_string()),
            ("METRICS_PORT", "0".to_string()),
        ];
        values.extend(extra);
        let bootstrap =
            render(&text, &values).map_err(|e| harness(format!("envoy/{template}: {e}")))?;
        let bootstrap_path = dir.path().join("envoy.yaml");
        std::fs::write(&bootstrap_path, bootstrap).map_err(|e| harness(e.to_string()))?;
        let log_path = dir.path().join("envoy.log");
        let stderr = std::fs::File::create(dir.path().join("stderr.log"))
            .map_err(|e| harness(e.to_string()))?;
        // The template's access log goes to stdout.
        let stdout = std::fs::File::create(dir.path().join("access.log"))
            .map_err(|e| harness(e.to_string()))?;
        let child = Command::new(&tools.envoy)
            .arg("-c")
            .arg(&bootstrap_path)
            .args(["--concurrency", "1", "-l", "warning"])
            // Each instance gets its own admin port (admin listens on port 0) and no hot-restart
            // shared memory, so any number of sidecars and test processes can run at once.
            .arg("--admin-address-path")
            .arg(dir.path().join("admin-address"))
            .arg("--disable-hot-restart")
            .arg("--service-node")
            .arg(name)
            .arg("--log-path")
            .arg(&log_path)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| harness(format!("cannot run {}: {e}", tools.envoy.display())))?;
        Ok(Envoy {
            name: name.to_string(),
            child,
            dir: Some(dir),
            wasm: tools.wasm.clone(),
            admin: None,
            listener: None,
            requested_listen: listen,
        })
    }

    /// Polls until admin `/ready` answers `LIVE` and the listener accepts a connection, or
    /// Envoy exits, or the start deadline passes.
    pub fn wait_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + START_DEADLINE;
        let mut last_state = String::from("(admin not up)");
        loop {
            if let Some(status) =
                self.child.try_wait().map_err(|e| StartError::Harness(e.to_string()))?
            {
                return Err(StartError::Exited { status, log_tail: self.log_tail(40) });
            }
            if self.admin.is_none() {
                self.admin = std::fs::read_to_string(self.dir().join("admin-address"))
                    .ok()
                    .and_then(|a| a.trim().parse().ok());
            }
            if self.admin.is_some() {
                match self.admin_get("/ready") {
                    Ok((200, body)) if body.trim() == "LIVE" => {
                        if let Some(addr) = self.listener_address() {
                            if TcpStream::connect(addr).is_ok() {
                                self.listener = Some(addr);
                                return Ok(());
                            }
                        }
                        last_state = "LIVE, listener not accepting yet".into();
                    }
                    Ok((status, body)) => last_state = format!("{status} {}", body.trim()),
                    Err(e) => last_state = e,
                }
            }
            if Instant::now() > deadline {
                return Err(StartError::NotReady { last_state, log_tail: self.log_tail(40) });
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Envoy process id (e.g. to read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address the sidecar's listener accepts on (known once ready).
    pub fn listener(&self) -> SocketAddr {
        self.listener.unwrap_or(self.requested_listen)
    }

    /// Whether the Envoy process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Replaces the filter config; Envoy picks the new ECDS file up by itself.
    pub fn write_filter_config(&self, config_json: &str) -> Result<(), String> {
        write_filter_config(&self.dir().join("l7gate-filter.yaml"), config_json, &self.wasm)
    }

    /// `GET <path>` on the admin interface: status and body.
    pub fn admin_get(&self, path: &str) -> Result<(u16, String), String> {
        let admin = self.admin.ok_or("admin address not known yet")?;
        http_request(admin, "GET", path)
    }

    /// The flow records (JSON lines of the flow access log) Envoy has written so far.
    pub fn flow_records(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir().join("access.log")).unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Polls until at least `n` flow records were written (the access log is flushed
    /// periodically), and returns them all.
    pub fn wait_for_flow_records(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let records = self.flow_records();
            if records.len() >= n || Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// One counter or gauge from admin `/stats`, if Envoy has it.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let (_, body) = self.admin_get(&format!("/stats?filter=^{name}$")).ok()?;
        body.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(": ")?.trim().parse().ok())
    }

    /// The metrics listener of the ADS templates (the listener named `metrics`).
    pub fn metrics_listener(&self) -> Option<SocketAddr> {
        self.bound_listeners()
            .into_iter()
            .find_map(|(name, addr)| (name == "metrics").then_some(addr))
    }

    /// Every listener Envoy bound: (name, address).
    fn bound_listeners(&self) -> Vec<(String, SocketAddr)> {
        let parsed = || -> Option<Vec<(String, SocketAddr)>> {
            let (_, body) = self.admin_get("/listeners?format=json").ok()?;
            let json: serde_json::Value = serde_json::from_str(&body).ok()?;
            let listeners = json["listener_statuses"].as_array()?.iter().filter_map(|l| {
                let sock = &l["local_address"]["socket_address"];
                let ip: std::net::IpAddr = sock["address"].as_str()?.parse().ok()?;
                let port = u16::try_from(sock["port_value"].as_u64()?).ok()?;
                Some((l["name"].as_str()?.to_string(), SocketAddr::new(ip, port)))
            });
            Some(listeners.collect())
        };
        parsed().unwrap_or_default()
    }

    /// Asks Envoy to exit (admin `/quitquitquit`) so it flushes its logs, and waits for it; kills
    /// it if it does not exit in time.
    pub fn stop_gracefully(&mut self) {
        if let Some(admin) = self.admin {
            let _ = http_request(admin, "POST", "/quitquitquit");
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(POLL_EVERY);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Polls `/stats` until counter `name` satisfies `pred` (e.g. an ECDS update was applied);
    /// returns its last value either way.
    pub fn wait_for_stat(&self, name: &str, pred: impl Fn(u64) -> bool) -> Option<u64> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let value = self.stat(name);
            if value.is_some_and(&pred) || Instant::now() > deadline {
                return value;
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// The last `lines` lines of Envoy's log, its access log and stderr (startup failures).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for file in ["envoy.log", "access.log", "stderr.log"] {
            let text = std::fs::read_to_string(self.dir().join(file)).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            if !tail.is_empty() {
                out.push_str(&format!("--- {file} ({} of {} lines) ---\n", tail.len(), all.len()));
                out.push_str(&tail.join("\n"));
                out.push('\n');
            }
        }
        out
    }

    /// The sidecar's working directory (bootstrap, ECDS file, logs).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("/nonexistent"))
    }

    fn listener_address(&self) -> Option<SocketAddr> {
        if self.requested_listen.port() != 0 {
            return Some(self.requested_listen);
        }
        // Port 0: ask Envoy which port it bound.
        self.bound_listeners().into_iter().find_map(|(name, addr)| {
            (name != "metrics" && addr.ip() == self.requested_listen.ip()).then_some(addr)
        })
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Buffered access-log lines are only written on a clean exit.
            self.stop_gracefully();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "==== Envoy sidecar {} (kept in {}) ====\n{}",
                self.name,
                self.dir().display(),
                self.log_tail(60)
            );
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
        }
    }
}

/// Fills a template's `${...}` placeholders; every placeholder must be known.
pub fn render(template: &str, values: &[(&str, String)]) -> Result<String, String> {
    let mut out = template.to_string();
    for (key, value) in values {
        out = out.replace(&format!("${{{key}}}"), value);
    }
    match out.find("${") {
        Some(at) => Err(format!(
            "a placeholder the harness does not fill: {}",
            out[at..].lines().next().unwrap_or_default()
        )),
        None => Ok(out),
    }
}

/// The placeholders of an ADS template's control-plane cluster, for the Envoy of endpoint
/// `name`: its address, and the mTLS credentials with the file-based SDS resources of
/// `envoy/xds-tls/` rendered into `dir`.
pub(crate) fn xds_values(
    xds: &Xds,
    name: &str,
    dir: &Path,
) -> Result<Vec<(&'static str, String)>, String> {
    let credentials = xds.credentials(name)?.ok_or(
        "the control plane serves plaintext (ServeSpec::plaintext), the ADS templates speak mTLS only",
    )?;
    let tls = repo_root().join("envoy").join("xds-tls");
    for file in ["xds-certificate.yaml", "xds-ca.yaml"] {
        let text = std::fs::read_to_string(tls.join(file))
            .map_err(|e| format!("cannot read envoy/xds-tls/{file}: {e}"))?;
        let rendered = render(&text, &[("XDS_TLS_DIR", credentials.display().to_string())])
            .map_err(|e| format!("envoy/xds-tls/{file}: {e}"))?;
        std::fs::write(dir.join(file), rendered).map_err(|e| e.to_string())?;
    }
    Ok(vec![
        ("XDS_ADDRESS", xds.addr.ip().to_string()),
        ("XDS_PORT", xds.addr.port().to_string()),
        ("XDS_SERVER_NAME", SERVER_NAME.to_string()),
        ("XDS_SDS_DIR", dir.display().to_string()),
    ])
}

pub(crate) fn sidecar_dir(name: &str) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        // A node id may be `namespace/name`.
        .prefix(&format!("l7gate-{}-", name.replace('/', "_")))
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))
}

fn write_filter_config(path: &Path, config_json: &str, wasm: &Path) -> Result<(), String> {
    let ecds = l7gate::ecds::render(config_json, wasm);
    l7gate::ecds::write_atomically(path, &ecds)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A minimal blocking HTTP/1.1 request without body (admin interface, metrics listener).
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("admin {addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| format!("admin {addr}{path}: {e}"))?;
    let response = crate::harness::client::parse_response(&raw)?;
    Ok((response.status, response.body))
}

/// A hand-written config in the filter's schema: `ingress` enforced or not, no rules at all.
pub fn config_without_rules(name: &str, ingress_enforced: bool) -> String {
    Config {
        version: SCHEMA_VERSION,
        endpoint: EndpointRef {
            name: name.to_string(),
            namespace: "default".to_string(),
            identity: 0,
        },
        identities: Vec::new(),
        ipcache: Vec::new(),
        local: vec![],
        ingress: DirectionPolicy { enforced: ingress_enforced, rules: Vec::new(), audit: None },
        egress: DirectionPolicy { enforced: false, rules: Vec::new(), audit: None },
    }
    .to_json()
    .expect("a config of plain fields serialises")
}
