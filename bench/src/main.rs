//! `l7gate-bench`: Envoy without filter, with native RBAC and with the l7gate filter, side by
//! side, under the same generated policies; interleaved rounds, medians of per-round ratios.
//! Run it through `bench/run.sh` (which builds the wasm and checks the tools); see
//! `docs/performance.md`.
//!
//!     l7gate-bench [--quick] [--rounds N] [--seconds S] [--rules 1,100,1000,10000] [--out DIR]
//!     l7gate-bench propagation [--changes N] [--rules 10,1000,10000] [--out DIR]   (docs/xds.md)
//!     l7gate-bench xds-scale [--clients N] [--changes N] [--rules N] [--out DIR]     (docs/xds.md)
//!     l7gate-bench tls-egress [--rounds N] [--seconds S] [--patterns 10,10000]      (docs/fqdn.md)
//!     l7gate-bench soak [--requests 10000000] [--rules 1000] [--chunk-seconds 10]  (docs/performance.md)
//!
//! Needs `L7GATE_ENVOY` and `L7GATE_WASM` (absolute paths), `wrk`, `h2load` and `gnuplot`.

mod cpu;
mod envoy;
mod load;
mod policy;
mod propagation;
mod rbac;
mod report;
mod soak;
mod tls_egress;
mod xds_scale;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cpu::Cpu;
use envoy::{Envoy, Variant};
use load::{Protocol, Sample};
use report::RuleCount;

struct Options {
    rounds: usize,
    seconds: u64,
    rules: Vec<usize>,
    out: PathBuf,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        rounds: 3,
        seconds: 4,
        rules: vec![1, 100, 1000, 10000],
        out: PathBuf::from("bench/results"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => (o.rounds, o.seconds, o.rules) = (1, 2, vec![1, 1000]),
            "--rounds" => o.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--seconds" => o.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--rules" => o.rules = parse_list(&value()?).map_err(|e| format!("--rules: {e}"))?,
            "--out" => o.out = PathBuf::from(value()?),
            _ => return Err(format!("unknown argument {a}; usage: l7gate-bench [--quick] [--rounds N] [--seconds S] [--rules 1,100,...] [--out DIR]")),
        }
    }
    Ok(o)
}

/// A comma-separated list of counts.
fn parse_list(s: &str) -> Result<Vec<usize>, std::num::ParseIntError> {
    s.split(',').map(|n| n.trim().parse()).collect()
}

fn env_path(name: &str) -> Result<PathBuf, String> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{name} is not set (bench/run.sh sets it)"))
}

/// The pause after each load run.
const SETTLE: Duration = Duration::from_millis(500);

/// The loads of one round: (label, protocol, direct response?, allowed request?).
const LOADS: [(&str, Protocol, bool, bool); 5] = [
    ("h1 direct allowed", Protocol::H1, true, true),
    ("h1 direct denied", Protocol::H1, true, false),
    ("h2 direct allowed", Protocol::H2, true, true),
    ("h1 proxied allowed", Protocol::H1, false, true),
    ("h2 proxied allowed", Protocol::H2, false, true),
];

fn main() {
    if let Err(e) = run() {
        eprintln!("l7gate-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    match std::env::args().nth(1).as_deref() {
        Some("propagation") => return propagation::run(std::env::args().skip(2)),
        Some("xds-scale") => return xds_scale::run(std::env::args().skip(2)),
        Some("tls-egress") => return tls_egress::run(std::env::args().skip(2)),
        Some("soak") => return soak::run(std::env::args().skip(2)),
        _ => {}
    }
    let o = options()?;
    let (envoy_bin, wasm) = (env_path("L7GATE_ENVOY")?, env_path("L7GATE_WASM")?);
    let wasm_bytes =
        std::fs::metadata(&wasm).map_err(|e| format!("{}: {e}", wasm.display()))?.len();
    let dir = scratch_dir("throughput")?;
    let _upstream =
        Envoy::start(&envoy_bin, &dir, "upstream", &envoy::upstream_bootstrap(), Cpu::Helper)?;
    let mut counts = Vec::new();
    for &rules in &o.rules {
        eprintln!("== {rules} rules");
        counts.push(measure(rules, &o, &envoy_bin, &wasm, &dir)?);
    }
    let stamp = stamp()?;
    std::fs::create_dir_all(&o.out).map_err(|e| e.to_string())?;
    let (md_path, png) = (o.out.join(format!("{stamp}.md")), o.out.join(format!("{stamp}.png")));
    let header = format!(
        "# l7gate benchmark {stamp}\n\nCommand: `bench/run.sh {}`; {} round(s) of {} s per load and variant, interleaved; \
         Envoy `--concurrency 1` (pinned to CPU 0 when there are two or more; load generators and the upstream on CPU 1); \
         wrk `-t1 -c16`, h2load `-t1 -c16 -m10`, {} request headers besides the request line; {} CPUs; load average at the end: {}\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        o.rounds,
        o.seconds,
        load::HEADERS.len(),
        cpus(),
        load_average(),
    );
    let mut md = report::markdown(&header, &counts, wasm_bytes);
    match report::plot(&counts, &png) {
        Ok(()) => md.push_str(&format!(
            "\n![rules vs throughput]({})\n",
            png.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()
        )),
        Err(e) => eprintln!("l7gate-bench: no plot: {e}"),
    }
    std::fs::write(&md_path, &md).map_err(|e| e.to_string())?;
    println!("{md}\nwrote {}", md_path.display());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The minute a run started, `2026-01-31-1200`: the results' file names.
fn stamp() -> Result<String, String> {
    let out = std::process::Command::new("date")
        .arg("+%Y-%m-%d-%H%M")
        .output()
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// A fresh temporary directory for one part of a run.
fn scratch_dir(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("l7gate-bench-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Writes `<out>/<stamp>-<kind>.md`, prints it and where it went.
fn write_result(out: &Path, stamp: &str, kind: &str, md: &str) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let path = out.join(format!("{stamp}-{kind}.md"));
    std::fs::write(&path, md).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{md}\nwrote {}", path.display());
    Ok(())
}

fn measure(
    rules: usize,
    o: &Options,
    envoy_bin: &Path,
    wasm: &Path,
    dir: &Path,
) -> Result<RuleCount, String> {
    let set = policy::generate(rules)?;
    let config_json = set.config.to_json().map_err(|e| e.to_string())?;
    let ecds = dir.join(format!("l7gate-{rules}.ecds.json"));
    std::fs::write(&ecds, l7gate::ecds::render(&config_json, wasm)).map_err(|e| e.to_string())?;
    let filters = |v: Variant| -> Result<Vec<serde_json::Value>, String> {
        Ok(match v {
            Variant::NoFilter => vec![],
            Variant::Rbac => rbac::filters(&set.config)?,
            Variant::L7gate => vec![envoy::l7gate_filter(&ecds)],
        })
    };
    let mut envoys = Vec::new();
    for v in Variant::ALL {
        envoys.push(Envoy::start(
            envoy_bin,
            dir,
            &format!("{}-{rules}", v.name()),
            &envoy::bootstrap(v, &filters(v)?),
            Cpu::UnderTest,
        )?);
    }
    for v in Variant::ALL {
        sanity_check(v, &set)?;
    }
    let mut loads: Vec<(String, Vec<[Sample; 3]>)> =
        LOADS.iter().map(|l| (l.0.to_string(), Vec::new())).collect();
    for round in 0..o.rounds {
        for ((label, protocol, direct, allowed), (_, rounds)) in LOADS.iter().zip(loads.iter_mut())
        {
            let mut samples = [Sample::default(); 3];
            // Rotate who goes first, so no variant always runs on a warmer or colder machine.
            for k in 0..3 {
                let i = (k + round) % 3;
                let v = Variant::ALL[i];
                let path = if *allowed { &set.allowed_path } else { &set.denied_path };
                let url = format!("http://{}:{}{path}", v.address(*direct), envoy::PORT);
                samples[i] = load::run(*protocol, &url, Duration::from_secs(o.seconds))?;
                // A saturated Envoy (RBAC at 10,000 rules) is still working off what it read
                // when the load generator stops; let it drain before the next variant runs.
                std::thread::sleep(SETTLE);
            }
            eprintln!(
                "   round {round} {label}: {:.0} / {:.0} / {:.0} req/s (no-filter / rbac / l7gate)",
                samples[0].rps, samples[1].rps, samples[2].rps
            );
            rounds.push(samples);
        }
    }
    let rss = |i: usize| envoys.get(i).and_then(|e: &Envoy| envoy::rss_kib(e.pid()));
    let l7_log = envoys.get(2).map(|e| e.log.clone()).unwrap_or_default();
    Ok(RuleCount {
        rules,
        loads,
        configure_us: envoy::configure_micros(&l7_log),
        rss_kib: [rss(0), rss(1), rss(2)],
        config_bytes: config_json.len(),
    })
}

/// Before measuring: the allowed request passes and the denied one gets 403 (200 without a
/// filter), in both modes; the filter may need a moment to load its ECDS config.
fn sanity_check(v: Variant, set: &policy::PolicySet) -> Result<(), String> {
    for direct in [true, false] {
        let to =
            format!("{}:{}", v.address(direct), envoy::PORT).parse().map_err(|e| format!("{e}"))?;
        let want_denied = if v == Variant::NoFilter { 200 } else { 403 };
        for (path, want) in [(&set.allowed_path, 200), (&set.denied_path, want_denied)] {
            let mut got = envoy::get(to, path)?;
            for _ in 0..100 {
                if got.0 != 500 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
                got = envoy::get(to, path)?;
            }
            if got.0 != want {
                return Err(format!(
                    "{} {to}{path}: expected {want}, got {} {:?}",
                    v.name(),
                    got.0,
                    got.1
                ));
            }
        }
    }
    Ok(())
}
