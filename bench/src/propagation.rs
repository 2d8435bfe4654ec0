//! `l7gate-bench propagation`: how long an edited policy file takes to be enforced. The real
//! `l7gate serve` watches a generated policy set (`policy::sources`) plus one small file,
//! `flip.yaml`, that grants or withholds `GET` on the probe's denied path; a real ADS sidecar
//! (`envoy/sidecar-ads.yaml`, through the e2e harness) fronts endpoint `api`. Each change renames a
//! new `flip.yaml` into place, and a probe on a keep-alive connection polls every millisecond until
//! the response carries the new status (403 ↔ 200): the wall time from the rename to that response
//! is the propagation latency (debounce, reload and compile of every endpoint, push, Envoy's new
//! Wasm config, one request).
//!
//!     l7gate-bench propagation [--changes N] [--rules 10,1000,10000] [--out DIR]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use l7gate_e2e::harness::cluster::ECDS_UPDATE_SUCCESS;
use l7gate_e2e::harness::control::{ControlPlane, ServeSpec};
use l7gate_e2e::harness::envoy::{AdsSidecarSpec, Envoy};
use l7gate_e2e::harness::tools::Tools;
use l7gate_e2e::harness::upstream::Upstream;

use crate::policy::{self, ENDPOINT};

/// Where the sidecar listens: port 8080 is the one the generated rules are for; an address of its
/// own, clear of the e2e clusters. Clients on loopback connect from 127.0.0.1, `loadgen`'s address.
const LISTEN: ([u8; 4], u16) = ([127, 0, 77, 1], 8080);
/// Between two polls of the probe.
const POLL: Duration = Duration::from_millis(1);
/// Quiet time between changes, so each is measured from a settled state.
const SETTLE: Duration = Duration::from_millis(150);
/// A guard against hanging, never a pass/fail threshold.
const GIVE_UP: Duration = Duration::from_secs(30);

struct Options {
    changes: usize,
    rules: Vec<usize>,
    out: PathBuf,
}

fn options(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o =
        Options { changes: 60, rules: vec![10, 1000, 10000], out: PathBuf::from("bench/results") };
    let mut args = args;
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--changes" => o.changes = value()?.parse().map_err(|e| format!("--changes: {e}"))?,
            "--rules" => o.rules = crate::parse_list(&value()?).map_err(|e| format!("--rules: {e}"))?,
            "--out" => o.out = PathBuf::from(value()?),
            _ => return Err(format!("unknown argument {a}; usage: l7gate-bench propagation [--changes N] [--rules 10,1000,...] [--out DIR]")),
        }
    }
    Ok(o)
}

/// Runs the benchmark and writes `<out>/<date>-propagation.md`.
pub fn run(args: impl Iterator<Item = String>) -> Result<(), String> {
    let o = options(args)?;
    let tools = Tools::discover()?;
    let mut rows = String::new();
    for &rules in &o.rules {
        eprintln!("== propagation, {rules} rules, {} changes", o.changes);
        let mut ms = measure(&tools, rules, o.changes)?;
        ms.sort_by(f64::total_cmp);
        let line = format!(
            "| {rules} | {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            ms.len(),
            percentile(&ms, 50.0),
            percentile(&ms, 99.0),
            ms.first().copied().unwrap_or_default(),
            ms.last().copied().unwrap_or_default(),
        );
        eprint!("   {line}");
        rows.push_str(&line);
    }
    let stamp = crate::stamp()?;
    let md = format!(
        "# l7gate propagation latency {stamp}\n\nCommand: `bench/run.sh propagation {args}`; {cpus} CPUs; load average at the end: {load}.\n\
         From the rename of a new `flip.yaml` into the watched policy directory to the first response with the new status, \
         polled every {poll} ms on one keep-alive HTTP/1.1 connection; `l7gate serve` (debounce {debounce} ms) and one Envoy \
         sidecar over ADS; changes alternate 403 → 200 → 403.\n\n\
         | rules | changes | p50 ms | p99 ms | min ms | max ms |\n|---:|---:|---:|---:|---:|---:|\n{rows}",
        args = std::env::args().skip(2).collect::<Vec<_>>().join(" "),
        cpus = crate::cpus(),
        load = crate::load_average(),
        poll = POLL.as_millis(),
        debounce = l7gate::watch::DEBOUNCE.as_millis(),
    );
    crate::write_result(&o.out, &stamp, "propagation", &md)
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// The latencies (ms) of `changes` flips at `rules` rules.
fn measure(tools: &Tools, rules: usize, changes: usize) -> Result<Vec<f64>, String> {
    let dir = crate::scratch_dir(&format!("propagation-{rules}"))?;
    let sources = policy::sources(rules);
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("endpoints.yaml"), &sources.inventory).map_err(|e| e.to_string())?;
    std::fs::write(policies.join("bench.yaml"), &sources.policies).map_err(|e| e.to_string())?;
    let flip = Flip { dir: policies, loadgen: sources.loadgen };
    flip.write(false)?;
    let control = ControlPlane::start(ServeSpec {
        policies: dir.join("policies"),
        endpoints: dir.join("endpoints.yaml"),
        wasm: tools.wasm.clone(),
        egress: false,
        kubeconfig: None,
        plaintext: false,
    })?;
    let upstream = Upstream::start(ENDPOINT).map_err(|e| e.to_string())?;
    let spec = AdsSidecarSpec {
        name: ENDPOINT.into(),
        listen: SocketAddr::from(LISTEN),
        upstream: upstream.addr(),
        xds: control.xds(),
    };
    let mut envoy = Envoy::spawn_ads(tools, &spec).map_err(|e| e.to_string())?;
    envoy.wait_ready().map_err(|e| e.to_string())?;
    if envoy.wait_for_stat(ECDS_UPDATE_SUCCESS, |n| n >= 1) < Some(1) {
        return Err(format!(
            "the sidecar got no config:\n{}\n{}",
            envoy.log_tail(20),
            control.log()
        ));
    }
    let mut probe = Probe::new(envoy.listener(), policy::denied_path(sources.loadgen));
    probe.wait_for(403)?;
    let mut samples = Vec::with_capacity(changes);
    for i in 0..changes {
        std::thread::sleep(SETTLE);
        let allow = i % 2 == 0;
        let start = flip.write(allow)?;
        samples.push(
            probe.wait_for(if allow { 200 } else { 403 })?.duration_since(start).as_secs_f64()
                * 1000.0,
        );
    }
    drop(envoy);
    drop(control);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(samples)
}

/// The policy file whose content decides the probe's verdict.
struct Flip {
    dir: PathBuf,
    loadgen: usize,
}

impl Flip {
    /// Writes the next `flip.yaml` beside it, renames it into place, returns when it did. With
    /// `allow`, `loadgen` may `GET` the probe's path; otherwise only `DELETE` it, which the probe
    /// never sends (the file changes either way, as an edit would).
    fn write(&self, allow: bool) -> Result<Instant, String> {
        let k = self.loadgen;
        let method = if allow { "GET" } else { "DELETE" };
        let text = format!(
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: flip, namespace: default}}\nspec:\n  endpointSelector: {{matchLabels: {{app: {ENDPOINT}}}}}\n  ingress:\n    - fromEndpoints: [{{matchLabels: {{app: client-{k}}}}}]\n      toPorts:\n        - ports: [{{port: \"8080\", protocol: TCP}}]\n          rules:\n            http:\n              - {{method: \"{method}\", path: \"/api/svc-{k}/res-1/.*\"}}\n"
        );
        // Not *.yaml: the server ignores it until it is renamed.
        let tmp = self.dir.join("flip.next");
        std::fs::write(&tmp, text).map_err(|e| e.to_string())?;
        let start = Instant::now();
        std::fs::rename(&tmp, self.dir.join("flip.yaml")).map_err(|e| e.to_string())?;
        Ok(start)
    }
}

/// One HTTP/1.1 keep-alive connection sending the same `GET` again and again.
struct Probe {
    to: SocketAddr,
    path: String,
    conn: Option<BufReader<TcpStream>>,
}

impl Probe {
    fn new(to: SocketAddr, path: String) -> Probe {
        Probe { to, path, conn: None }
    }

    /// Polls until a response has `status`; returns when it arrived.
    fn wait_for(&mut self, status: u16) -> Result<Instant, String> {
        let deadline = Instant::now() + GIVE_UP;
        let mut last = None;
        while Instant::now() < deadline {
            match self.get() {
                Ok(s) if s == status => return Ok(Instant::now()),
                Ok(s) => last = Some(s),
                // Envoy may close a connection (e.g. drain): open another.
                Err(_) => self.conn = None,
            }
            std::thread::sleep(POLL);
        }
        Err(format!(
            "{}{}: no {status} within {GIVE_UP:?} (last status {last:?})",
            self.to, self.path
        ))
    }

    fn get(&mut self) -> Result<u16, String> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.to, Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().ok_or("no connection")?;
        write!(conn.get_mut(), "GET {} HTTP/1.1\r\nHost: {ENDPOINT}\r\n\r\n", self.path)
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        conn.read_line(&mut line).map_err(|e| e.to_string())?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut length = 0;
        loop {
            line.clear();
            conn.read_line(&mut line).map_err(|e| e.to_string())?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().map_err(|e| format!("content-length: {e}"))?;
                }
            }
        }
        let mut body = vec![0; length];
        conn.read_exact(&mut body).map_err(|e| e.to_string())?;
        Ok(status)
    }
}
