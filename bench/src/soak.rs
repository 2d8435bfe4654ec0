//! `l7gate-bench soak`: memory over many requests. One l7gate Envoy (the throughput bench's
//! bootstrap and generated policy) takes HTTP/1.1 load in chunks, alternating the allowed and
//! the denied request; after each chunk the report gives the requests so far, Envoy's resident
//! memory and the filter's own `l7gate.vm_memory_bytes` gauge (the Wasm VM's linear memory).
//! Growth after the first chunk (allocator and VM warm-up) would be a leak.
//!
//!     l7gate-bench soak [--requests 10000000] [--rules 1000] [--chunk-seconds 10] [--out DIR]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::cpu::Cpu;
use crate::envoy::{self, Envoy, Variant};
use crate::load::{self, Protocol};

struct Options {
    requests: f64,
    rules: usize,
    chunk: Duration,
    out: PathBuf,
}

fn options(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        requests: 1e7,
        rules: 1000,
        chunk: Duration::from_secs(10),
        out: PathBuf::from("bench/results"),
    };
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--requests" => o.requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?,
            "--rules" => o.rules = value()?.parse().map_err(|e| format!("--rules: {e}"))?,
            "--chunk-seconds" => o.chunk = Duration::from_secs(value()?.parse().map_err(|e| format!("--chunk-seconds: {e}"))?),
            "--out" => o.out = PathBuf::from(value()?),
            _ => return Err(format!("unknown argument {a}; usage: l7gate-bench soak [--requests N] [--rules N] [--chunk-seconds S] [--out DIR]")),
        }
    }
    Ok(o)
}

/// One sample after a chunk: requests so far, RSS and VM memory in bytes.
struct Point {
    requests: f64,
    rss: u64,
    vm: Option<u64>,
}

pub fn run(args: impl Iterator<Item = String>) -> Result<(), String> {
    let o = options(args)?;
    let (envoy_bin, wasm) = (crate::env_path("L7GATE_ENVOY")?, crate::env_path("L7GATE_WASM")?);
    let dir = crate::scratch_dir("soak")?;
    let set = crate::policy::generate(o.rules)?;
    let ecds = dir.join("l7gate.ecds.json");
    std::fs::write(
        &ecds,
        l7gate::ecds::render(&set.config.to_json().map_err(|e| e.to_string())?, &wasm),
    )
    .map_err(|e| e.to_string())?;
    let bootstrap = envoy::bootstrap(Variant::L7gate, &[envoy::l7gate_filter(&ecds)]);
    // The upstream only for the sanity check's proxied requests; the load is direct-response.
    let _upstream =
        Envoy::start(&envoy_bin, &dir, "upstream", &envoy::upstream_bootstrap(), Cpu::Helper)?;
    let l7 = Envoy::start(&envoy_bin, &dir, "l7gate-soak", &bootstrap, Cpu::UnderTest)?;
    crate::sanity_check(Variant::L7gate, &set)?;
    let vm_memory = || {
        let (_, body) = envoy::get(l7.admin, "/stats?filter=l7gate.vm_memory_bytes").ok()?;
        body.lines().find_map(|l| {
            l.strip_prefix("wasmcustom.l7gate.vm_memory_bytes: ")?.trim().parse().ok()
        })
    };
    let mut points = Vec::new();
    let mut total = 0.0;
    let mut chunk = 0;
    while total < o.requests {
        let path = if chunk % 2 == 0 { &set.allowed_path } else { &set.denied_path };
        let url = format!("http://{}:{}{path}", Variant::L7gate.address(true), envoy::PORT);
        let sample = load::run(Protocol::H1, &url, o.chunk)?;
        total += sample.rps * o.chunk.as_secs_f64();
        let rss = envoy::rss_kib(l7.pid()).ok_or("cannot read Envoy's RSS")? * 1024;
        let vm = vm_memory();
        eprintln!(
            "   chunk {chunk}: {:.2}M requests, RSS {:.1} MiB, VM {:?} MiB",
            total / 1e6,
            mib(rss),
            vm.map(mib)
        );
        points.push(Point { requests: total, rss, vm });
        chunk += 1;
    }
    let md = report(&o, &points);
    crate::write_result(&o.out, &crate::stamp()?, "soak", &md)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

fn report(o: &Options, points: &[Point]) -> String {
    let mut md = format!(
        "# l7gate soak\n\nCommand: `{}`; {} rules; HTTP/1.1, wrk `-t1 -c16`, chunks of {} s alternating the allowed and the denied request; Envoy `--concurrency 1`.\n\n",
        std::iter::once("bench/run.sh soak".to_string()).chain(std::env::args().skip(2)).collect::<Vec<_>>().join(" "),
        o.rules,
        o.chunk.as_secs(),
    );
    md.push_str("| chunk | requests so far | Envoy RSS (MiB) | l7gate VM linear memory (MiB) |\n|---:|---:|---:|---:|\n");
    for (i, p) in points.iter().enumerate() {
        let vm = p.vm.map_or("–".to_string(), |v| format!("{:.2}", mib(v)));
        let _ = writeln!(md, "| {i} | {:.2}M | {:.1} | {vm} |", p.requests / 1e6, mib(p.rss));
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let vm = match (first.vm, last.vm) {
            (Some(a), Some(b)) => format!("{:+.2} MiB", mib(b) - mib(a)),
            _ => "unknown".to_string(),
        };
        let _ = writeln!(
            md,
            "\nFrom the end of chunk 0 ({:.2}M requests) to the end ({:.2}M): RSS {:+.1} MiB, VM linear memory {vm}.",
            first.requests / 1e6,
            last.requests / 1e6,
            mib(last.rss) - mib(first.rss),
        );
    }
    md
}
