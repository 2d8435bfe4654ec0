//! A real application that normalises paths further than Envoy: embedded Tomcat 10 (Debian's
//! `libtomcat10-java`, installed by scripts/bootstrap.sh) running `tests/tomcat/Resolver.java`,
//! compiled here with `javac`. Tomcat cuts `;` path parameters and decodes before it removes dot
//! segments, the reading behind most path-confusion bypasses of proxies; its answer says which
//! path it dispatched on, so a test sees where an allowed request really went.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::tools::repo_root;

/// Where Debian installs the Tomcat jars.
const JARS: &str = "/usr/share/java";
/// The jars embedded Tomcat needs (Debian names, without the version).
const MODULES: &[&str] = &[
    "catalina",
    "coyote",
    "util",
    "util-scan",
    "api",
    "juli",
    "servlet-api",
    "jaspic-api",
    "annotations-api",
];
/// Upper bound for Tomcat to listen; a guard against hanging, never an assertion.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running Tomcat; killed when dropped.
pub struct Tomcat {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Tomcat {
    /// Compiles the resolver and starts Tomcat on 127.0.0.1 (a free port).
    pub fn start() -> Result<Tomcat, String> {
        let classpath = MODULES
            .iter()
            .map(|m| PathBuf::from(JARS).join(format!("tomcat10-{m}.jar")))
            .map(|jar| match jar.exists() {
                true => Ok(jar.display().to_string()),
                false => Err(format!("{} missing: run scripts/bootstrap.sh", jar.display())),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(":");
        let dir = tempfile::Builder::new()
            .prefix("l7gate-tomcat-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let source = repo_root().join("tests/tomcat/Resolver.java");
        let javac = Command::new("javac")
            .args(["-nowarn", "-Xlint:none", "-d"])
            .arg(dir.path())
            .args(["-cp", &classpath])
            .arg(&source)
            .output()
            .map_err(|e| format!("javac (run scripts/bootstrap.sh): {e}"))?;
        if !javac.status.success() {
            return Err(format!(
                "javac {}: {}",
                source.display(),
                String::from_utf8_lossy(&javac.stderr)
            ));
        }
        let mut child = Command::new("java")
            .arg("-cp")
            .arg(format!("{}:{classpath}", dir.path().display()))
            .arg("Resolver")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("java: {e}"))?;
        let stdout = child.stdout.take().ok_or("java: no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let port = BufReader::new(stdout).lines().map_while(Result::ok).find_map(|line| {
                line.strip_prefix("listening ").and_then(|p| p.trim().parse::<u16>().ok())
            });
            let _ = tx.send(port);
        });
        let port = match rx.recv_timeout(START_DEADLINE) {
            Ok(Some(port)) => port,
            other => {
                let _ = child.kill();
                return Err(format!("Tomcat did not start listening: {other:?}"));
            }
        };
        Ok(Tomcat { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), _dir: dir })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The body Tomcat answers when it dispatched `method` on `path`.
    pub fn reply_body(method: &str, path: &str) -> String {
        format!("tomcat resolved {method} {path}")
    }
}

impl Drop for Tomcat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
