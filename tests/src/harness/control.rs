//! The control plane as a process: runs the built `l7gate serve` binary (found next to the test
//! or demo executable, in `target/<profile>/`), waits until its status endpoint answers, reads
//! its status, restarts it on the same addresses, kills it on drop and prints its log when a test
//! fails.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use l7gate::xds::report::StatusReport;

/// Upper bound for the server to answer; a guard against hanging, never an assertion.
const START_DEADLINE: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(20);

/// How to run `l7gate serve`.
#[derive(Debug, Clone)]
pub struct ServeSpec {
    pub policies: PathBuf,
    pub endpoints: PathBuf,
    /// The filter module path handed to Envoy.
    pub wasm: PathBuf,
    /// Also serve the egress filters (`serve --egress`).
    pub egress: bool,
    /// Read policies and inventory from the Kubernetes API server this kubeconfig names
    /// (`serve --kubernetes`, `$KUBECONFIG`) instead of `policies` and `endpoints`.
    pub kubeconfig: Option<PathBuf>,
    /// `serve --plaintext` (for raw gRPC clients); otherwise mTLS with a CA of its own
    /// (`l7gate certs`), whose client certificates [`Xds::credentials`] mints.
    pub plaintext: bool,
}

impl ServeSpec {
    /// `<manifests>/policies` and `<manifests>/endpoints.yaml`, ingress filters only.
    pub fn files(manifests: &Path, wasm: &Path) -> ServeSpec {
        ServeSpec {
            policies: manifests.join("policies"),
            endpoints: manifests.join("endpoints.yaml"),
            wasm: wasm.to_path_buf(),
            egress: false,
            kubeconfig: None,
            plaintext: false,
        }
    }
}

/// The DNS name of the harness's server certificates (Envoys connect to 127.0.0.1 and check
/// this name: XDS_SERVER_NAME).
pub const SERVER_NAME: &str = "l7gate";

/// How Envoys reach a control plane: its address and, over mTLS, the CA directory that mints
/// their client certificates.
#[derive(Debug, Clone)]
pub struct Xds {
    pub addr: SocketAddr,
    pki: Option<PathBuf>,
    /// The endpoint every certificate names, whatever the node asks for (a rogue node).
    pinned: Option<String>,
}

impl Xds {
    /// The CA certificate (PEM file) of the server's certificate and of its clients'; `None`
    /// over plaintext.
    pub fn ca(&self) -> Option<PathBuf> {
        self.pki.as_ref().map(|pki| pki.join("ca.crt"))
    }

    /// The same control plane, with certificates naming `endpoint` whatever the node asks for.
    pub fn certified_as(&self, endpoint: &str) -> Xds {
        Xds { pinned: Some(endpoint.to_string()), ..self.clone() }
    }

    /// The credentials directory (tls.crt, tls.key, ca.crt) of the client certificate of the
    /// Envoy of endpoint `namespace/name` (a bare name is taken to be in namespace `default`, as
    /// every test inventory's are), minted by `l7gate certs`; `None` over plaintext.
    pub fn credentials(&self, endpoint: &str) -> Result<Option<PathBuf>, String> {
        let Some(pki) = &self.pki else { return Ok(None) };
        let endpoint = self.pinned.as_deref().unwrap_or(endpoint);
        let endpoint = if endpoint.contains('/') {
            endpoint.to_string()
        } else {
            format!("default/{endpoint}")
        };
        let dir = pki.join(endpoint.replace('/', "."));
        // Minted once per endpoint: a second sidecar of it shares the files (minting again
        // would rotate the first one's certificate under it).
        if !dir.join("tls.crt").is_file() {
            certs(pki, &["--endpoint", &endpoint])?;
        }
        Ok(Some(dir))
    }
}

impl std::fmt::Display for Xds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.addr, if self.pki.is_some() { " (mTLS)" } else { "" })
    }
}

/// Runs `l7gate certs --out <pki> <args>`.
pub fn certs(pki: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(binary()?)
        .arg("certs")
        .arg("--out")
        .arg(pki)
        .args(args)
        .output()
        .map_err(|e| format!("l7gate certs: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("l7gate certs {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// A running `l7gate serve`; killed when dropped.
pub struct ControlPlane {
    spec: ServeSpec,
    child: Option<Child>,
    xds: SocketAddr,
    status: SocketAddr,
    dir: Option<tempfile::TempDir>,
    starts: usize,
}

impl ControlPlane {
    /// Starts `l7gate serve` on free loopback ports and waits until it answers.
    pub fn start(spec: ServeSpec) -> Result<ControlPlane, String> {
        let dir = tempfile::Builder::new()
            .prefix("l7gate-serve-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let mut control = ControlPlane {
            spec,
            child: None,
            xds: free_port()?,
            status: free_port()?,
            dir: Some(dir),
            starts: 0,
        };
        control.launch()?;
        Ok(control)
    }

    /// Where and how Envoys connect.
    pub fn xds(&self) -> Xds {
        Xds { addr: self.xds, pki: (!self.spec.plaintext).then(|| self.pki()), pinned: None }
    }

    fn pki(&self) -> PathBuf {
        self.dir().join("pki")
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where `GET /status` answers.
    pub fn status_addr(&self) -> SocketAddr {
        self.status
    }

    /// The current status document.
    pub fn status(&self) -> Result<StatusReport, String> {
        l7gate::xds::report::fetch(self.status)
    }

    /// Polls the status until `pred` holds; returns the last report either way (the caller
    /// asserts on it).
    pub fn wait_for_status(
        &self,
        pred: impl Fn(&StatusReport) -> bool,
    ) -> Result<StatusReport, String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let report = self.status()?;
            if pred(&report) || Instant::now() > deadline {
                return Ok(report);
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Kills the server (SIGKILL: no goodbye to the Envoys).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after `START_DEADLINE`, reported as an error).
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus, String> {
        let mut child = self.child.take().ok_or("l7gate serve is not running")?;
        let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        if !sent.as_ref().is_ok_and(|s| s.success()) {
            let _ = child.kill();
            return Err(format!("could not send SIGTERM: {sent:?}"));
        }
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("l7gate serve ignored SIGTERM for {START_DEADLINE:?}"));
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Starts it again on the same addresses, with `wasm` if given.
    pub fn restart(&mut self, wasm: Option<&Path>) -> Result<(), String> {
        self.kill();
        if let Some(wasm) = wasm {
            self.spec.wasm = wasm.to_path_buf();
        }
        self.launch()
    }

    /// Its log (stdout and stderr) across all starts.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|n| std::fs::read_to_string(self.log_path(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("---- restart ----\n")
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("/nonexistent"))
    }

    fn log_path(&self, start: usize) -> PathBuf {
        self.dir().join(format!("serve-{start}.log"))
    }

    fn launch(&mut self) -> Result<(), String> {
        let binary = binary()?;
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).map_err(|e| e.to_string())?;
        let mut command = Command::new(&binary);
        command.arg("serve");
        if self.spec.egress {
            command.arg("--egress");
        }
        match &self.spec.kubeconfig {
            Some(kubeconfig) => command.arg("--kubernetes").env("KUBECONFIG", kubeconfig),
            None => command
                .arg("--policies")
                .arg(&self.spec.policies)
                .arg("--endpoints")
                .arg(&self.spec.endpoints),
        };
        if self.spec.plaintext {
            command.arg("--plaintext");
        } else {
            let pki = self.pki();
            if !pki.join("server").is_dir() {
                certs(&pki, &["--server-name", SERVER_NAME])?;
            }
            let server = pki.join("server");
            command
                .arg("--tls-cert")
                .arg(server.join("tls.crt"))
                .arg("--tls-key")
                .arg(server.join("tls.key"))
                .arg("--client-ca")
                .arg(server.join("ca.crt"));
        }
        let mut child = command
            .arg("--wasm")
            .arg(&self.spec.wasm)
            .arg("--listen")
            .arg(self.xds.to_string())
            .arg("--status-listen")
            .arg(self.status.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("l7gate serve exited ({status}):\n{}", self.log()));
            }
            if self.status().is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!(
                    "l7gate serve did not answer in {START_DEADLINE:?}:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(POLL_EVERY);
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("==== l7gate serve (kept in {}) ====\n{}", self.dir().display(), self.log());
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
        }
    }
}

/// The `l7gate` binary of this build: `target/<profile>/l7gate`, beside the running executable
/// (or its parent, for test executables in `target/<profile>/deps/`).
pub fn binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir.join("l7gate");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "{} does not exist: build it first (`cargo build -p l7gate`; `cargo test --workspace` does)",
            binary.display()
        ))
    }
}

/// A port on 127.0.0.1 nobody listens on right now, for a server started next (Envoy's admin,
/// `l7gate serve`, also across its restarts). Taken from below the kernel's ephemeral range
/// (32768-60999 by default), not from it: a port from bind-to-0 could be taken by any test's
/// outgoing connection before the server binds it ("Address already in use"); and never the same
/// twice in one process.
pub(crate) fn free_port() -> Result<SocketAddr, String> {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Test processes start at different offsets.
    let offset = std::process::id().wrapping_mul(7_919) % COUNT;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + (offset + n) % COUNT).map_err(|e| e.to_string())?;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().map_err(|e| e.to_string());
        }
    }
    Err(format!("no free port in {FIRST}-{}", FIRST + COUNT - 1))
}
