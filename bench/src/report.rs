//! Results: medians over rounds, the markdown report, and the PNG plot (gnuplot).

use std::fmt::Write;
use std::path::Path;
use std::process::Command;

use crate::load::Sample;

/// Everything measured for one rule count.
pub struct RuleCount {
    pub rules: usize,
    /// Per load: its label and, per round, one sample per variant (in `Variant::ALL` order).
    pub loads: Vec<(String, Vec<[Sample; 3]>)>,
    /// on_configure per VM (µs), from the filter's log line.
    pub configure_us: Vec<u64>,
    /// RSS of each variant's Envoy after the load (KiB).
    pub rss_kib: [Option<u64>; 3],
    pub config_bytes: usize,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v.get(n / 2).copied().unwrap_or(f64::NAN),
        n => {
            (v.get(n / 2 - 1).copied().unwrap_or(f64::NAN)
                + v.get(n / 2).copied().unwrap_or(f64::NAN))
                / 2.0
        }
    }
}

const NONE: usize = 0;
const RBAC: usize = 1;
const L7: usize = 2;

/// Median over rounds of the per-round ratio `a / b` of two variants.
fn ratio(rounds: &[[Sample; 3]], a: usize, b: usize) -> f64 {
    median(rounds.iter().map(|r| r[a].rps / r[b].rps).collect())
}

fn med(rounds: &[[Sample; 3]], v: usize, f: impl Fn(&Sample) -> Option<f64>) -> String {
    let values: Vec<f64> = rounds.iter().filter_map(|r| f(&r[v])).collect();
    if values.is_empty() {
        "–".into()
    } else {
        format!("{:.2}", median(values))
    }
}

/// The markdown report.
pub fn markdown(header: &str, counts: &[RuleCount], wasm_bytes: u64) -> String {
    let mut md = String::from(header);
    let _ =
        writeln!(md, "\nwasm size: {wasm_bytes} bytes ({:.0} KiB)\n", wasm_bytes as f64 / 1024.0);
    md.push_str("## Throughput\n\nMedians over rounds of per-round ratios; req/s are medians too. p50/p99 in ms (wrk only).\n\n");
    md.push_str("| rules | load | l7gate / no-filter | l7gate / RBAC | RBAC / no-filter | req/s no-filter | req/s RBAC | req/s l7gate | p50 none / RBAC / l7gate | p99 none / RBAC / l7gate |\n");
    md.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---|---|\n");
    for c in counts {
        for (label, rounds) in &c.loads {
            let rps = |v: usize| median(rounds.iter().map(|r| r[v].rps).collect());
            let lat = |f: fn(&Sample) -> Option<f64>| {
                format!(
                    "{} / {} / {}",
                    med(rounds, NONE, f),
                    med(rounds, RBAC, f),
                    med(rounds, L7, f)
                )
            };
            let _ = writeln!(
                md,
                "| {} | {label} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {} | {} |",
                c.rules,
                ratio(rounds, L7, NONE),
                ratio(rounds, L7, RBAC),
                ratio(rounds, RBAC, NONE),
                rps(NONE),
                rps(RBAC),
                rps(L7),
                lat(|s| s.p50_ms),
                lat(|s| s.p99_ms)
            );
        }
    }
    md.push_str("\n## Configuration and memory\n\n| rules | filter config (bytes) | on_configure per VM (ms) | RSS no-filter / RBAC / l7gate (MiB) | l7gate − no-filter (MiB) |\n|---:|---:|---|---|---:|\n");
    for c in counts {
        let conf: Vec<String> =
            c.configure_us.iter().map(|us| format!("{:.1}", *us as f64 / 1000.0)).collect();
        let mib = |k: Option<u64>| k.map_or("–".into(), |k| format!("{:.1}", k as f64 / 1024.0));
        let diff = c.rss_kib[L7]
            .zip(c.rss_kib[NONE])
            .map_or("–".into(), |(a, b)| format!("{:.1}", (a as f64 - b as f64) / 1024.0));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} / {} / {} | {diff} |",
            c.rules,
            c.config_bytes,
            conf.join(", "),
            mib(c.rss_kib[NONE]),
            mib(c.rss_kib[RBAC]),
            mib(c.rss_kib[L7])
        );
    }
    md
}

/// Plots rules vs throughput relative to no filter (first load of each mode) with gnuplot.
pub fn plot(counts: &[RuleCount], png: &Path) -> Result<(), String> {
    let mut data = String::from("# rules  rbac/none(h1 direct)  l7gate/none(h1 direct)  rbac/none(h1 proxied)  l7gate/none(h1 proxied)\n");
    for c in counts {
        let find = |label: &str| {
            c.loads.iter().find(|(l, _)| l == label).map(|(_, r)| r.as_slice()).unwrap_or(&[])
        };
        let (direct, proxied) = (find("h1 direct allowed"), find("h1 proxied allowed"));
        let _ = writeln!(
            data,
            "{} {} {} {} {}",
            c.rules,
            ratio(direct, RBAC, NONE),
            ratio(direct, L7, NONE),
            ratio(proxied, RBAC, NONE),
            ratio(proxied, L7, NONE)
        );
    }
    let dat = png.with_extension("dat");
    std::fs::write(&dat, data).map_err(|e| e.to_string())?;
    // `gnuplot -e` takes one line: commands separated by semicolons.
    let script = format!(
        "set terminal pngcairo size 900,540; set output '{png}'; set logscale x; set xlabel 'rules (HTTP rule elements)'; \
         set ylabel 'throughput / no filter (HTTP/1.1, wrk)'; set yrange [0:1.2]; set key bottom left; set grid; \
         plot 1 title 'no filter' lw 2 lc rgb 'gray', \
         '{dat}' using 1:2 with linespoints title 'native RBAC, direct' lw 2 lc rgb 'blue', \
         '{dat}' using 1:3 with linespoints title 'l7gate, direct' lw 2 lc rgb 'red', \
         '{dat}' using 1:4 with linespoints title 'native RBAC, proxied' dt 2 lw 2 lc rgb 'blue', \
         '{dat}' using 1:5 with linespoints title 'l7gate, proxied' dt 2 lw 2 lc rgb 'red'",
        png = png.display(),
        dat = dat.display()
    );
    let out = Command::new("gnuplot")
        .arg("-e")
        .arg(&script)
        .output()
        .map_err(|e| format!("gnuplot: {e}"))?;
    if !out.status.success() {
        return Err(format!("gnuplot failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}
