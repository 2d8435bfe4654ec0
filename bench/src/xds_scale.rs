//! `l7gate-bench xds-scale`: the control plane's CPU and memory with a fleet of simulated
//! sidecars. The real `l7gate serve` gets the generated policy set (`policy::sources`) plus N
//! fleet endpoints (`ep-0` ... , label `tier: fleet`) and `fleet.yaml`, one policy selecting all
//! of them. N in-process ADS clients (one HTTP/2 connection and SotW stream each, node id = the
//! endpoint) subscribe to the ECDS resource `l7gate` and ACK every response, as Envoy does. Then:
//! the server's RSS and CPU at steady state (`/proc/<pid>/status`, `/proc/<pid>/stat`), and for
//! each rewrite of `fleet.yaml` (which changes every fleet endpoint's config) the time from the
//! rename until the first and the last of the N clients ACKed the new version, the server's CPU
//! time meanwhile and its RSS after.
//!
//!     l7gate-bench xds-scale [--clients N] [--changes N] [--rules N] [--out DIR]

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use l7gate_e2e::harness::control::{ControlPlane, ServeSpec};
use l7gate_e2e::harness::tools::Tools;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::envoy::{rss_kib, status_kib};
use crate::policy;

/// How long the steady state is sampled.
const STEADY: Duration = Duration::from_secs(10);
/// A guard against hanging, never a pass/fail threshold.
const GIVE_UP: Duration = Duration::from_secs(120);

struct Options {
    clients: usize,
    changes: usize,
    rules: usize,
    out: PathBuf,
}

fn options(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o =
        Options { clients: 1000, changes: 5, rules: 1000, out: PathBuf::from("bench/results") };
    let mut args = args;
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let mut count = |name: &str| -> Result<usize, String> {
            value()?.parse().map_err(|e| format!("{name}: {e}"))
        };
        match a.as_str() {
            "--clients" => o.clients = count("--clients")?,
            "--changes" => o.changes = count("--changes")?,
            "--rules" => o.rules = count("--rules")?,
            "--out" => o.out = PathBuf::from(value()?),
            _ => return Err(format!("unknown argument {a}; usage: l7gate-bench xds-scale [--clients N] [--changes N] [--rules N] [--out DIR]")),
        }
    }
    Ok(o)
}

/// One ACK a client sent: which client, which version, when.
struct Ack {
    client: usize,
    version: String,
    at: Instant,
}

/// Runs the benchmark and writes `<out>/<date>-xds-scale.md`.
pub fn run(args: impl Iterator<Item = String>) -> Result<(), String> {
    let o = options(args)?;
    let tools = Tools::discover()?;
    let dir = crate::scratch_dir("xds-scale")?;
    let sources = policy::sources(o.rules);
    let mut inventory = sources.inventory;
    for i in 0..o.clients {
        let _ = writeln!(inventory, "  - {{name: ep-{i}, namespace: default, labels: {{app: ep-{i}, tier: fleet}}, ips: [10.4.{}.{}], ports: {{http: 8080}}}}", i / 250, i % 250 + 1);
    }
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("endpoints.yaml"), inventory).map_err(|e| e.to_string())?;
    std::fs::write(policies.join("bench.yaml"), &sources.policies).map_err(|e| e.to_string())?;
    write_fleet(&policies, 0)?;
    let control = ControlPlane::start(ServeSpec {
        policies: policies.clone(),
        endpoints: dir.join("endpoints.yaml"),
        wasm: tools.wasm,
        egress: false,
        kubeconfig: None,
        plaintext: true,
    })?;
    let pid = control.pid().ok_or("l7gate serve is not running")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = runtime.block_on(measure(&o, control.xds().addr, pid, &policies));
    // The clients go first, so none reports the server's exit as an error.
    runtime.shutdown_background();
    drop(control);
    let report = report?;
    let _ = std::fs::remove_dir_all(&dir);
    let stamp = crate::stamp()?;
    let md = format!(
        "# l7gate control plane with {clients} xDS clients {stamp}\n\nCommand: `bench/run.sh xds-scale {args}`; {cpus} CPUs, shared by \
         `l7gate serve` and the simulated clients (one tokio runtime, {clients} HTTP/2 connections); load average at the end: {load}. \
         Inventory: {clients} fleet endpoints plus the endpoints of the generated {rules}-rule set.\n\n{report}",
        clients = o.clients,
        args = std::env::args().skip(2).collect::<Vec<_>>().join(" "),
        cpus = crate::cpus(),
        load = crate::load_average(),
        rules = o.rules,
    );
    crate::write_result(&o.out, &stamp, "xds-scale", &md)
}

/// `fleet.yaml`, generation `generation`: a few rules for every fleet endpoint, one of them naming
/// the generation, so each rewrite changes every fleet endpoint's config. Renamed into place.
fn write_fleet(dir: &Path, generation: usize) -> Result<Instant, String> {
    let mut text = String::from(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: fleet, namespace: default}\nspec:\n  endpointSelector: {matchLabels: {tier: fleet}}\n  ingress:\n    - fromEndpoints: [{matchLabels: {app: client-0}}]\n      toPorts:\n        - ports: [{port: \"8080\", protocol: TCP}]\n          rules:\n            http:\n",
    );
    let _ = writeln!(
        text,
        "              - {{method: GET, path: \"/fleet/generation-{generation}/.*\"}}"
    );
    for j in 0..19 {
        let _ = writeln!(
            text,
            "              - {{method: \"{}\", path: \"/fleet/res-{j}/.*\"}}",
            ["GET", "POST", "PUT|PATCH"][j % 3]
        );
    }
    let tmp = dir.join("fleet.next");
    std::fs::write(&tmp, text).map_err(|e| e.to_string())?;
    let start = Instant::now();
    std::fs::rename(&tmp, dir.join("fleet.yaml")).map_err(|e| e.to_string())?;
    Ok(start)
}

/// Connects the fleet, samples the steady state, runs the changes; the report's Markdown.
async fn measure(
    o: &Options,
    xds: SocketAddr,
    pid: u32,
    policies: &Path,
) -> Result<String, String> {
    let (tx, mut acks) = mpsc::unbounded_channel();
    let connecting = Instant::now();
    for client in 0..o.clients {
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Err(e) = fleet_client(client, xds, tx).await {
                eprintln!("client ep-{client}: {e}");
            }
        });
    }
    drop(tx);
    let mut versions: HashMap<usize, String> = HashMap::new();
    let (_, connected) = collect(&mut acks, &mut versions, o.clients).await?;
    let connect_s = connected.duration_since(connecting).as_secs_f64();
    eprintln!("   {} clients ACKed their first config after {connect_s:.2} s", o.clients);

    let ticks = clock_ticks()?;
    let cpu_before = cpu_ticks(pid)?;
    tokio::time::sleep(STEADY).await;
    let steady_cpu = (cpu_ticks(pid)? - cpu_before) as f64 / ticks / STEADY.as_secs_f64() * 100.0;
    let steady_rss = rss_kib(pid).unwrap_or_default();
    eprintln!("   steady: {steady_cpu:.2} % CPU, RSS {steady_rss} KiB");

    let mut rows = String::new();
    for generation in 1..=o.changes {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cpu_before = cpu_ticks(pid)?;
        let start = write_fleet(policies, generation)?;
        let (first, last) = collect(&mut acks, &mut versions, o.clients).await?;
        let cpu_s = (cpu_ticks(pid)? - cpu_before) as f64 / ticks;
        let ms = |t: Instant| t.duration_since(start).as_secs_f64() * 1000.0;
        let line = format!(
            "| {generation} | {:.0} | {:.0} | {cpu_s:.2} | {} |\n",
            ms(first),
            ms(last),
            rss_kib(pid).unwrap_or_default() / 1024,
        );
        eprint!("   {line}");
        rows.push_str(&line);
    }
    Ok(format!(
        "All {clients} clients connected and ACKed in {connect_s:.2} s.\n\nSteady state ({steady} s, all streams open, no changes): \
         **{steady_cpu:.2} % of one CPU**, RSS **{rss:.1} MiB**.\n\n\
         Changes touching all {clients} nodes (rename of `fleet.yaml` → ACK of the new version):\n\n\
         | change | first ACK ms | all ACKed ms | server CPU s | RSS after MiB |\n|---:|---:|---:|---:|---:|\n{rows}\n\
         Peak RSS (VmHWM): {hwm:.1} MiB.\n",
        clients = o.clients,
        steady = STEADY.as_secs(),
        rss = steady_rss as f64 / 1024.0,
        hwm = status_kib(pid, "VmHWM:").unwrap_or_default() as f64 / 1024.0,
    ))
}

/// Reads ACKs until each of `clients` clients ACKed a version other than the one it had in
/// `versions` (at first: any version); returns when the first and the last of those arrived.
async fn collect(
    acks: &mut mpsc::UnboundedReceiver<Ack>,
    versions: &mut HashMap<usize, String>,
    clients: usize,
) -> Result<(Instant, Instant), String> {
    let before = versions.clone();
    let mut done = HashSet::new();
    let mut first = None;
    loop {
        let ack = tokio::time::timeout(GIVE_UP, acks.recv())
            .await
            .map_err(|_| {
                format!("only {} of {clients} clients ACKed within {GIVE_UP:?}", done.len())
            })?
            .ok_or("every client stopped")?;
        let at = ack.at;
        let new = before.get(&ack.client) != Some(&ack.version) && done.insert(ack.client);
        versions.insert(ack.client, ack.version);
        if new {
            let first = *first.get_or_insert(at);
            if done.len() == clients {
                return Ok((first, at));
            }
        }
    }
}

/// One simulated sidecar: connects (retrying while the server's backlog is full), subscribes to
/// `l7gate` as node `ep-<client>`, ACKs every response and reports each ACK.
async fn fleet_client(
    client: usize,
    xds: SocketAddr,
    acks: mpsc::UnboundedSender<Ack>,
) -> Result<(), String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{xds}"))
        .map_err(|e| e.to_string())?;
    let mut tries = 0;
    let channel = loop {
        match endpoint.connect().await {
            Ok(c) => break c,
            Err(e) if tries > 50 => return Err(e.to_string()),
            Err(_) => tries += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (tx, requests) = mpsc::channel(4);
    let type_url = l7gate::ecds::TYPED_EXTENSION_CONFIG_TYPE.to_string();
    let subscribe = |version_info: String, response_nonce: String| DiscoveryRequest {
        version_info,
        response_nonce,
        type_url: type_url.clone(),
        resource_names: vec!["l7gate".into()],
        ..Default::default()
    };
    let mut first = subscribe(String::new(), String::new());
    first.node = Some(Node { id: format!("ep-{client}"), ..Default::default() });
    tx.send(first).await.map_err(|e| e.to_string())?;
    let mut responses = AggregatedDiscoveryServiceClient::new(channel)
        .stream_aggregated_resources(ReceiverStream::new(requests))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    while let Some(response) = responses.message().await.map_err(|e| e.to_string())? {
        tx.send(subscribe(response.version_info.clone(), response.nonce))
            .await
            .map_err(|e| e.to_string())?;
        let _ = acks.send(Ack { client, version: response.version_info, at: Instant::now() });
    }
    Ok(())
}

/// User + system CPU time of a process, in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The command name (field 2) may hold spaces: count from the closing parenthesis (field 3 on).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or(format!("/proc/{pid}/stat: no field {n}"))
    };
    Ok(field(14)? + field(15)?)
}

/// Clock ticks per second (`getconf CLK_TCK`).
fn clock_ticks() -> Result<f64, String> {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .map_err(|e| format!("getconf: {e}"))?;
    String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|e| format!("CLK_TCK: {e}"))
}
