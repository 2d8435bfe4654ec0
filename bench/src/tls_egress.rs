//! `l7gate-bench tls-egress`: new TLS connections per second through the egress Envoy
//! (`envoy/egress.yaml`, through the e2e harness) with the l7gate filters and without them, under
//! a generated cluster-wide policy of N `toFQDNs` entries (`matchName`s, `*.` and `**.` patterns
//! and a few irregular ones; the name the clients ask for is allowed by the last entry). Each
//! client connection does a full handshake (no session resumption) with SNI `api.example.com`
//! with the TLS upstream behind Envoy, one line each way, and closes. Rounds alternate which
//! variant goes first; the figures are medians over rounds, the ratio the median of per-round
//! ratios. Envoy's CPU time per connection (from `/proc`) is reported too: it is less disturbed
//! by other load on the machine than the rate.
//!
//!     l7gate-bench tls-egress [--rounds N] [--seconds S] [--patterns 10,10000] [--connections C] [--out DIR]

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use l7gate_e2e::harness::dns::DnsServer;
use l7gate_e2e::harness::egress::{self, EgressSpec, Filters};
use l7gate_e2e::harness::envoy::Envoy;
use l7gate_e2e::harness::tls::{TestPki, TlsUpstream};
use l7gate_e2e::harness::tools::Tools;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::report::median;

/// The name every client asks for; the policy's last `toFQDNs` entry allows it.
const ALLOWED: &str = "api.example.com";
/// A name no entry allows: the sanity check expects the filter to close it.
const DENIED: &str = "api.example.org";
const UPSTREAM: Ipv4Addr = Ipv4Addr::new(127, 0, 78, 10);
/// The egress Envoys' addresses: without filters, with them.
const LISTEN: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 78, 1), Ipv4Addr::new(127, 0, 78, 2)];
const TLS_PORT: u16 = 443;
/// `toFQDNs` entries per egress rule of the generated policy.
const PER_RULE: usize = 50;
/// Irregular patterns (checked one by one by the filter), whatever the pattern count.
const IRREGULAR: usize = 4;

struct Options {
    rounds: usize,
    seconds: u64,
    patterns: Vec<usize>,
    connections: usize,
    out: PathBuf,
}

fn options(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        rounds: 6,
        seconds: 5,
        patterns: vec![10, 10000],
        connections: 32,
        out: PathBuf::from("bench/results"),
    };
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--rounds" => o.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--seconds" => o.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--patterns" => o.patterns = crate::parse_list(&value()?).map_err(|e| format!("--patterns: {e}"))?,
            "--connections" => o.connections = value()?.parse().map_err(|e| format!("--connections: {e}"))?,
            "--out" => o.out = PathBuf::from(value()?),
            _ => return Err(format!("unknown argument {a}; usage: l7gate-bench tls-egress [--rounds N] [--seconds S] [--patterns 10,10000] [--connections C] [--out DIR]")),
        }
    }
    Ok(o)
}

/// One variant's load in one round.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    per_second: f64,
    failed: usize,
    /// Envoy CPU time per completed connection, in microseconds.
    cpu_us: f64,
}

/// Runs the benchmark and writes `<out>/<date>-tls-egress.md`.
pub fn run(args: impl Iterator<Item = String>) -> Result<(), String> {
    let o = options(args)?;
    let stamp = crate::stamp()?;
    let tools = Tools::discover()?;
    let pki = TestPki::new(&[ALLOWED, DENIED])?;
    let _upstream =
        TlsUpstream::start("upstream", SocketAddr::new(UPSTREAM.into(), TLS_PORT), &pki)?;
    let dns = DnsServer::start(&[(ALLOWED, UPSTREAM), (DENIED, UPSTREAM)])
        .map_err(|e| format!("DNS server: {e}"))?;
    let mut config = pki.client_config(true)?;
    config.resumption = rustls::client::Resumption::disabled();
    let client = Client {
        connector: TlsConnector::from(Arc::new(config)),
        concurrency: o.connections.max(1),
    };
    let mut rows = String::new();
    for &patterns in &o.patterns {
        eprintln!("== tls-egress, {patterns} toFQDNs entries");
        let rounds = measure(&tools, &dns, &client, patterns, &o)?;
        let ratios: Vec<f64> =
            rounds.iter().map(|[without, with]| with.per_second / without.per_second).collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let med = |v: usize, f: fn(&Sample) -> f64| {
            median(rounds.iter().map(|r| r.get(v).map_or(f64::NAN, f)).collect())
        };
        let failed: usize = rounds.iter().flatten().map(|s| s.failed).sum();
        let ratio = median(ratios);
        let line = format!(
            "| {patterns} | {:.0} | {:.0} | **{:.3}** ({lo:.3}–{hi:.3}) | {:.0} | {:.0} | {failed} |\n",
            med(0, |s| s.per_second),
            med(1, |s| s.per_second),
            ratio,
            med(0, |s| s.cpu_us),
            med(1, |s| s.cpu_us),
        );
        eprint!("   {line}");
        rows.push_str(&line);
    }
    let md = format!(
        "# l7gate egress TLS connection rate {stamp}\n\nCommand: `bench/run.sh tls-egress {args}`; {rounds} interleaved round(s) of {seconds} s \
         per variant; {conns} concurrent client connections, each a full TLS 1.3 handshake (no resumption) with SNI `{ALLOWED}` to the \
         TLS upstream through the egress Envoy (`--concurrency 1`), one line each way, then close; client, upstream and Envoys on one \
         machine; {cpus} CPUs; load average at the end: {load}.\n\n\
         | toFQDNs entries | conn/s without filter | conn/s with l7gate | ratio (median of rounds; min–max) | Envoy CPU µs/conn without | with | failed connections |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n{rows}",
        args = std::env::args().skip(2).collect::<Vec<_>>().join(" "),
        rounds = o.rounds,
        seconds = o.seconds,
        conns = client.concurrency,
        cpus = crate::cpus(),
        load = crate::load_average(),
    );
    crate::write_result(&o.out, &stamp, "tls-egress", &md)
}

/// Starts both Envoys for one policy size, checks them, and measures `o.rounds` rounds of
/// [without, with] samples.
fn measure(
    tools: &Tools,
    dns: &DnsServer,
    client: &Client,
    patterns: usize,
    o: &Options,
) -> Result<Vec<[Sample; 2]>, String> {
    let config_json = compile(patterns)?;
    let spec = |i: usize| EgressSpec {
        name: format!("bench-egress-{}", ["unfiltered", "l7gate"][i]),
        address: IpAddr::V4(LISTEN[i]),
        tls_port: TLS_PORT,
        http_port: 80,
        dns: dns.addr(),
        filters: if i == 0 { Filters::Absent } else { Filters::Files(config_json.clone()) },
    };
    let started = Instant::now();
    let envoys: Vec<Envoy> = (0..2)
        .map(|i| egress::start(tools, &spec(i)))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    for (i, envoy) in envoys.iter().enumerate() {
        client.sanity_check(envoy.listener(), i == 1)?;
    }
    eprintln!("   Envoys ready and checked in {:.1} s", started.elapsed().as_secs_f64());
    let mut rounds = Vec::new();
    for round in 0..o.rounds {
        let mut samples = [Sample::default(); 2];
        for k in 0..2 {
            let i = (k + round) % 2;
            let envoy = envoys.get(i).ok_or("no Envoy")?;
            samples[i] = client.load(envoy, Duration::from_secs(o.seconds))?;
        }
        eprintln!(
            "   round {round}: {:.0} / {:.0} conn/s, {:.0} / {:.0} Envoy µs/conn (without / with filter)",
            samples[0].per_second, samples[1].per_second, samples[0].cpu_us, samples[1].cpu_us
        );
        rounds.push(samples);
    }
    Ok(rounds)
}

/// The filter configuration of workload `client` under a policy of `patterns` `toFQDNs` entries.
fn compile(patterns: usize) -> Result<String, String> {
    let inventory = "namespaces:\n  - name: default\nnodes:\n  - name: node-1\n    ips: [10.255.0.1]\nendpoints:\n  - {name: client, namespace: default, labels: {app: client}, ips: [10.0.0.1]}\n";
    let loaded = l7gate::cilium::parse::parse_str(Path::new("bench-fqdn.yaml"), &policy(patterns))
        .map_err(|e| e.to_string())?;
    let inventory = l7gate::inventory::parse_str(Path::new("inventory.yaml"), inventory)
        .map_err(|e| e.to_string())?;
    let cluster = l7gate::compile::Cluster::new(loaded.policies, inventory);
    cluster
        .endpoint("client")
        .and_then(|e| cluster.compile(e))?
        .to_json()
        .map_err(|e| e.to_string())
}

/// A CCNP selecting every endpoint with `patterns` (at least one) `toFQDNs` entries on port 443,
/// `PER_RULE` to an egress rule; the last entry, `*.example.com`, allows [`ALLOWED`].
fn policy(patterns: usize) -> String {
    let entries: Vec<String> = (0..patterns.max(1))
        .map(|k| match k % 4 {
            _ if k + 1 == patterns.max(1) => "matchPattern: \"*.example.com\"".to_string(),
            0 => format!("matchName: \"host-{k}.corp.example.org\""),
            1 => format!("matchPattern: \"*.svc-{k}.example.net\""),
            2 => format!("matchPattern: \"**.zone-{k}.example.io\""),
            _ if k < 4 * IRREGULAR => format!("matchPattern: \"api-*.team-{k}.example.dev\""),
            _ => format!("matchName: \"api-{k}.example.dev\""),
        })
        .collect();
    let mut yaml = String::from("apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: fqdn-bench}\nspec:\n  endpointSelector: {}\n  egress:\n");
    for chunk in entries.chunks(PER_RULE) {
        yaml.push_str("    - toFQDNs:\n");
        for entry in chunk {
            let _ = writeln!(yaml, "        - {{{entry}}}");
        }
        yaml.push_str("      toPorts:\n        - ports: [{port: \"443\", protocol: TCP}]\n");
    }
    yaml
}

/// The load generator: TLS clients on one thread.
struct Client {
    connector: TlsConnector,
    concurrency: usize,
}

impl Client {
    /// One connection to `to` with SNI `name`: `Ok(true)` when the upstream answered.
    async fn exchange(
        connector: TlsConnector,
        to: SocketAddr,
        name: &'static str,
    ) -> Result<bool, String> {
        let tcp =
            tokio::net::TcpStream::connect(to).await.map_err(|e| format!("connect {to}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let server_name = ServerName::try_from(name).map_err(|e| e.to_string())?;
        let Ok(mut tls) = connector.connect(server_name, tcp).await else { return Ok(false) };
        tls.write_all(b"ping\n").await.map_err(|e| format!("write: {e}"))?;
        let mut reply = Vec::new();
        tls.read_to_end(&mut reply).await.map_err(|e| format!("read: {e}"))?;
        Ok(reply.starts_with(b"upstream saw ping"))
    }

    fn runtime() -> Result<tokio::runtime::Runtime, String> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    }

    /// The allowed name passes (the filter may need a moment to load its ECDS config); with the
    /// filter, the denied name is closed.
    fn sanity_check(&self, to: SocketAddr, filtered: bool) -> Result<(), String> {
        let rt = Client::runtime()?;
        let once = |name| rt.block_on(Client::exchange(self.connector.clone(), to, name));
        let mut allowed = once(ALLOWED);
        for _ in 0..100 {
            if allowed == Ok(true) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            allowed = once(ALLOWED);
        }
        if allowed != Ok(true) {
            return Err(format!("{to}: {ALLOWED} did not pass: {allowed:?}"));
        }
        if filtered && once(DENIED) != Ok(false) {
            return Err(format!("{to}: {DENIED} was not closed by the filter"));
        }
        Ok(())
    }

    /// `concurrency` connection loops against `envoy` for `length`.
    fn load(&self, envoy: &Envoy, length: Duration) -> Result<Sample, String> {
        let rt = Client::runtime()?;
        let to = envoy.listener();
        let cpu_before = cpu_seconds(envoy.pid())?;
        let start = Instant::now();
        let deadline = start + length;
        let (ok, failed) = rt.block_on(async {
            let tasks: Vec<_> = (0..self.concurrency)
                .map(|_| {
                    let connector = self.connector.clone();
                    tokio::spawn(async move {
                        let (mut ok, mut failed) = (0usize, 0usize);
                        while Instant::now() < deadline {
                            match Client::exchange(connector.clone(), to, ALLOWED).await {
                                Ok(true) => ok += 1,
                                _ => failed += 1,
                            }
                        }
                        (ok, failed)
                    })
                })
                .collect();
            let mut total = (0, 0);
            for task in tasks {
                let (ok, failed) = task.await.unwrap_or_default();
                total = (total.0 + ok, total.1 + failed);
            }
            total
        });
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds(envoy.pid())? - cpu_before;
        Ok(Sample { per_second: ok as f64 / elapsed, failed, cpu_us: cpu * 1e6 / ok.max(1) as f64 })
    }
}

/// User + system CPU time of a process, in seconds (`/proc/<pid>/stat`, 100 ticks a second).
fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The fields after the command name, which is in parentheses: state is field 3, utime 14.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| format!("/proc/{pid}/stat: no field {}", i + 3))
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}
