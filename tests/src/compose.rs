//! The compose deployment (envoy/compose) driven from the host, the way a user checks it: the
//! seed table and the egress rows sent from inside the client containers (`l7gate-example
//! probe` through `docker-compose exec`), judged by the response and by what each application
//! logged it received; a live policy edit; the control plane stopped; Prometheus queried with
//! every query of the Grafana dashboard. `l7gate-compose` (scripts/compose.sh) runs it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use l7gate::xds::report::StatusReport;

use crate::harness::client::{Protocol, Response};
use crate::harness::tools::repo_root;
use crate::scenario::{self, Case, Expect, Peer, SEED};
use l7gate_filter::headermap::CONNECTION_HEADER;

/// Where the host reaches Prometheus (the compose file publishes it on loopback only).
pub const PROMETHEUS: &str = "127.0.0.1:9090";
/// The applications behind sidecars.
pub const APPS: [&str; 3] = ["inventory-api", "payment-gateway", "catalog"];
/// Every Envoy of the deployment (node ids).
pub const ENVOYS: [&str; 4] =
    ["default/inventory-api", "default/payment-gateway", "default/catalog", "default/frontend"];
/// The external service's CA certificate, as the client containers see it.
const CA: &str = "/shared/ca.der";
/// A bound on every wait; a guard against hanging, never an assertion of speed.
const DEADLINE: Duration = Duration::from_secs(90);

/// One request from frontend through its egress Envoy.
#[derive(Debug, Clone, Copy)]
pub struct Egress {
    /// TLS (SNI) or plain HTTP (Host).
    pub tls: bool,
    pub name: &'static str,
    pub allowed: bool,
}

/// The egress rows: `*.example.com` matches one label (spec §6.3).
pub const EGRESS: &[Egress] = &[
    Egress { tls: true, name: "api.example.com", allowed: true },
    Egress { tls: true, name: "a.b.example.com", allowed: false },
    Egress { tls: true, name: "api.example.org", allowed: false },
    Egress { tls: false, name: "api.example.com", allowed: true },
    Egress { tls: false, name: "api.example.org", allowed: false },
];

/// One line of the printed table.
#[derive(Debug, Clone)]
pub struct Row {
    pub request: String,
    pub expected: String,
    pub actual: String,
    /// Why the row failed, if it did.
    pub failure: Option<String>,
}

/// The deployment: `docker-compose` (or `$L7GATE_COMPOSE`, e.g. `docker compose`) on
/// envoy/compose/docker-compose.yaml, project `$L7GATE_COMPOSE_PROJECT` (default `l7gate`).
pub struct Deployment {
    command: Vec<String>,
}

impl Deployment {
    pub fn from_env() -> Deployment {
        let mut command: Vec<String> = std::env::var("L7GATE_COMPOSE")
            .unwrap_or_else(|_| "docker-compose".into())
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let file = repo_root().join("envoy/compose/docker-compose.yaml");
        let project = std::env::var("L7GATE_COMPOSE_PROJECT").unwrap_or_else(|_| "l7gate".into());
        command.extend(["-f".into(), file.display().to_string(), "-p".into(), project]);
        Deployment { command }
    }

    fn compose(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.command[0]);
        c.args(&self.command[1..]).args(args);
        c
    }

    /// Runs a compose command; its stdout, or stderr as the error.
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .compose(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", self.command[0]))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{} {}: {}",
                self.command.join(" "),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Sends `requests` from inside `client`'s container; one result per request.
    pub fn probe(&self, client: &str, requests: &[Value]) -> Result<Vec<Value>, String> {
        let mut child = self
            .compose(&["exec", "-T", client, "/usr/local/bin/l7gate-example", "probe"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.command[0]))?;
        let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(input.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let results: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if results.len() != requests.len() {
            return Err(format!(
                "probe in {client}: {} results for {} requests ({}): {}",
                results.len(),
                requests.len(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(results)
    }

    /// The JSON lines a service has logged (what `l7gate-example` apps received).
    pub fn log(&self, service: &str) -> Result<Vec<Value>, String> {
        let text = self.run(&["logs", "--no-color", "--no-log-prefix", service])?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("app").is_some())
            .collect())
    }

    /// The control plane's status, asked from inside its container (`/status` answers loopback
    /// callers only; a published port's connections come from the network's gateway).
    pub fn status(&self) -> Result<StatusReport, String> {
        let json = self.run(&[
            "exec",
            "-T",
            "l7gate",
            "/usr/local/bin/l7gate",
            "status",
            "--server",
            "127.0.0.1:9902",
            "--json",
        ])?;
        serde_json::from_str(&json).map_err(|e| format!("l7gate status --json: {e}: {json}"))
    }

    /// Waits until every Envoy of the deployment is connected and has accepted what it was sent.
    pub fn wait_in_sync(&self) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let report = self.status();
            let synced = report.as_ref().is_ok_and(|r| {
                ENVOYS.iter().all(|id| {
                    r.nodes.iter().any(|n| {
                        n.node == *id
                            && n.connected
                            && n.resources.iter().any(|s| s.pushes > 0)
                            && n.resources
                                .iter()
                                .filter(|s| s.pushes > 0)
                                .all(|s| s.acked.is_some() && s.acked == s.current)
                    })
                })
            });
            if synced {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the Envoys did not get in sync with l7gate serve: {report:#?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends every seed row (HTTP/1.1 and HTTP/2, from the client containers) and every egress row,
    /// judges each response, then checks that each application received exactly the allowed
    /// requests (the last row says so, or how it differs).
    pub fn seed(&self) -> Result<Vec<Row>, String> {
        let before: BTreeMap<&str, usize> = APPS
            .iter()
            .chain(["external"].iter())
            .map(|a| Ok((*a, self.log(a)?.len())))
            .collect::<Result<_, String>>()?;
        let mut rows: Vec<Option<Row>> = vec![None; scenario::requests(SEED).count()];
        let mut expected_apps: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for client in ["frontend", "reporting", "outsider"] {
            let batch: Vec<(usize, &Case, Protocol)> = scenario::requests(SEED)
                .enumerate()
                .filter(|(_, (case, _))| client_of(case.from) == client)
                .map(|(i, (case, protocol))| (i, case, protocol))
                .collect();
            let requests: Vec<Value> =
                batch.iter().map(|(_, case, protocol)| http_request(case, *protocol)).collect();
            let results = self.probe(client, &requests)?;
            for ((i, case, protocol), result) in batch.into_iter().zip(results) {
                if let Expect::Allow { upstream_path } = case.expect {
                    expected_apps
                        .entry(case.to.to_string())
                        .or_default()
                        .push((case.method.to_string(), upstream_path.to_string()));
                }
                let (actual, failure) = match response_of(&result) {
                    Ok(r) => (summary(&r), scenario::check_response(case, &r).err()),
                    Err(e) => (e.clone(), Some(e)),
                };
                rows[i] = Some(Row {
                    request: format!("{} (in {client})", case.describe(protocol)),
                    expected: case.expected(),
                    actual,
                    failure,
                });
            }
        }
        let mut rows: Vec<Row> = rows.into_iter().flatten().collect();
        rows.extend(self.egress()?);
        // What reached the applications: exactly the allowed requests, in the order sent.
        std::thread::sleep(Duration::from_millis(300));
        let mut failures = Vec::new();
        for app in APPS {
            let got: Vec<(String, String)> = self
                .log(app)?
                .into_iter()
                .skip(before[app])
                .map(|v| {
                    if v["headers"]
                        .as_array()
                        .is_some_and(|h| h.iter().any(|n| n == CONNECTION_HEADER))
                    {
                        failures.push(format!(
                            "{app} received the sidecar's internal header {CONNECTION_HEADER}"
                        ));
                    }
                    (
                        v["method"].as_str().unwrap_or_default().to_string(),
                        v["path"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            let want = expected_apps.remove(app).unwrap_or_default();
            if got != want {
                failures.push(format!("{app} received {got:?}, expected exactly {want:?}"));
            }
        }
        let mut got: Vec<String> = self
            .log("external")?
            .into_iter()
            .skip(before["external"])
            .map(|v| match v["sni"].as_str() {
                Some(sni) => format!("TLS {sni} {}", v["line"].as_str().unwrap_or_default()),
                None => format!(
                    "HTTP {} {}",
                    v["method"].as_str().unwrap_or_default(),
                    v["path"].as_str().unwrap_or_default()
                ),
            })
            .collect();
        let mut want: Vec<String> = EGRESS
            .iter()
            .filter(|e| e.allowed)
            .map(|e| if e.tls { format!("TLS {} GET /", e.name) } else { "HTTP GET /".to_string() })
            .collect();
        got.sort();
        want.sort();
        if got != want {
            failures
                .push(format!("the external service received {got:?}, expected exactly {want:?}"));
        }
        rows.push(Row {
            request: "what the applications received (their logs)".into(),
            expected: "exactly the allowed requests".into(),
            actual: if failures.is_empty() { "as expected".into() } else { "different".into() },
            failure: (!failures.is_empty()).then(|| failures.join("; ")),
        });
        Ok(rows)
    }

    /// The egress rows, from frontend through its egress Envoy (in frontend's network namespace).
    fn egress(&self) -> Result<Vec<Row>, String> {
        let requests: Vec<Value> = EGRESS
            .iter()
            .map(|e| if e.tls {
                json!({"protocol": "tls", "to": "127.0.0.1:443", "sni": e.name, "ca": CA, "line": "GET /"})
            } else {
                json!({"protocol": "h1", "to": "127.0.0.1:80", "authority": e.name, "method": "GET", "path": "/"})
            })
            .collect();
        let results = self.probe("frontend", &requests)?;
        Ok(EGRESS
            .iter()
            .zip(results)
            .map(|(e, result)| {
                let (over, expected) = match (e.tls, e.allowed) {
                    (true, true) => {
                        ("TLS (SNI)", "handshake with the real service; \"external saw GET /\"")
                    }
                    (true, false) => ("TLS (SNI)", "closed before any upstream is contacted"),
                    (false, true) => ("HTTP (Host)", "200 \"external saw GET /\""),
                    (false, false) => ("HTTP (Host)", "403 Access denied"),
                };
                let (actual, ok) = if e.tls {
                    match (result.get("reply").and_then(Value::as_str), result.get("closed")) {
                        (Some(reply), _) => (
                            format!("reply {reply:?}"),
                            e.allowed && reply == "external saw GET /\n",
                        ),
                        (None, Some(why)) => {
                            (format!("closed ({})", why.as_str().unwrap_or_default()), !e.allowed)
                        }
                        _ => (result.to_string(), false),
                    }
                } else {
                    match response_of(&result) {
                        Ok(r) => {
                            let ok = if e.allowed {
                                r.status == 200 && r.body == "external saw GET /"
                            } else {
                                r.status == 403 && r.body == "Access denied\r\n"
                            };
                            (summary(&r), ok)
                        }
                        Err(err) => (err, false),
                    }
                };
                Row {
                    request: format!(
                        "frontend → {} {over} egress (in frontend, via its egress Envoy)",
                        e.name
                    ),
                    expected: expected.to_string(),
                    failure: (!ok).then(|| format!("expected: {expected}")),
                    actual,
                }
            })
            .collect())
    }
}

/// The container a row's sender runs in.
fn client_of(peer: Peer) -> &'static str {
    match peer {
        Peer::Endpoint(name) => name,
        // An address the inventory does not know.
        Peer::Address(_) => "outsider",
    }
}

fn http_request(case: &Case, protocol: Protocol) -> Value {
    json!({
        "protocol": protocol.to_string(),
        "to": format!("{}:8080", case.to),
        "authority": format!("{}:8080", case.to),
        "method": case.method,
        "path": case.path,
    })
}

fn response_of(result: &Value) -> Result<Response, String> {
    if let Some(e) = result.get("error") {
        return Err(format!("no response: {}", e.as_str().unwrap_or_default()));
    }
    let headers = result["headers"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|p| Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Response {
        status: result["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .ok_or(format!("no status in {result}"))?,
        headers,
        body: result["body"].as_str().unwrap_or_default().to_string(),
    })
}

fn summary(r: &Response) -> String {
    match r.header("location") {
        Some(location) if (300..400).contains(&r.status) => format!("{} → {location}", r.status),
        _ => format!("{} {:?}", r.status, r.body),
    }
}

/// Prints rows as a table; returns how many failed.
pub fn print_table(rows: &[Row]) -> usize {
    let width = |f: fn(&Row) -> &str| rows.iter().map(|r| f(r).chars().count()).max().unwrap_or(0);
    let (w0, w1) = (width(|r| &r.request).max(7), width(|r| &r.expected).max(8));
    println!("{:<w0$}  {:<w1$}  {:<4}  actual", "request", "expected", "");
    let mut failed = 0;
    for row in rows {
        let mark = if row.failure.is_none() { "OK" } else { "FAIL" };
        println!("{:<w0$}  {:<w1$}  {mark:<4}  {}", row.request, row.expected, row.actual);
        if let Some(why) = &row.failure {
            failed += 1;
            println!("{:<w0$}  {:<w1$}        ↳ {why}", "", "");
        }
    }
    failed
}

/// Every Prometheus query of the Grafana dashboard, with its variables filled for a query over
/// the last minutes.
pub fn dashboard_queries() -> Result<Vec<(String, String)>, String> {
    let path = repo_root().join("manifests/observability/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dashboard: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        if panel["datasource"]["type"] != "prometheus" {
            continue;
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let filled = expr
                    .replace("$instance", ".+")
                    .replace("$__rate_interval", "1m")
                    .replace("$__range", "15m");
                queries.push((panel["title"].as_str().unwrap_or_default().to_string(), filled));
            }
        }
    }
    Ok(queries)
}

/// Runs an instant query; the number of series in the answer.
pub fn prometheus_series(query: &str) -> Result<usize, String> {
    let addr: SocketAddr = PROMETHEUS.parse().map_err(|e| format!("{e}"))?;
    let path = format!("/api/v1/query?query={}", percent_encode(query));
    let (code, body) = crate::harness::envoy::http_request(addr, "GET", &path)?;
    let answer: Value = serde_json::from_str(&body)
        .map_err(|e| format!("Prometheus answered {code}: {e}: {body}"))?;
    if answer["status"] != "success" {
        return Err(format!("Prometheus: {body}"));
    }
    Ok(answer["data"]["result"].as_array().map_or(0, Vec::len))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `check` until it returns `Ok(Some)`, or fails after [`DEADLINE`].
pub fn wait_for<T>(
    what: &str,
    mut check: impl FnMut() -> Result<Option<T>, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let last = check();
        if let Ok(Some(v)) = last {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("gave up waiting: {what} (last: {:?})", last.err()));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The policies directory the deployment mounts (`$L7GATE_POLICIES`, as in the compose file).
pub fn policies_dir() -> PathBuf {
    std::env::var_os("L7GATE_POLICIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("manifests/policies"))
}

/// Replaces a file by rename, as editors do.
pub fn replace_file(path: &Path, text: &str) -> Result<(), String> {
    l7gate::ecds::write_atomically(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
