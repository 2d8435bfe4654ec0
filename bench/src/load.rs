//! Load generators: `wrk` (HTTP/1.1, 16 connections, one thread, latency percentiles) and
//! `h2load` (cleartext HTTP/2 with prior knowledge, 16 connections × 10 streams), each for a fixed
//! duration, on the helper CPU, every request with the same realistic [`HEADERS`]; their
//! reports parsed into requests per second and latency.

use crate::cpu::Cpu;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    H1,
    H2,
}

/// What one run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub rps: f64,
    /// wrk only (h2load reports no percentiles over all requests).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The headers every request carries besides the request line: what an API client behind a
/// browser front end typically sends (about 450 bytes), so the filter reads a realistic header
/// map rather than wrk's bare `Host`.
pub const HEADERS: [&str; 8] = [
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Accept: application/json, text/plain, */*",
    "Accept-Language: en-US,en;q=0.9",
    "Accept-Encoding: gzip, deflate, br",
    "Cookie: session=abcdef0123456789abcdef0123456789; theme=dark",
    "Referer: http://shop.example.com/cart",
    "X-Request-Id: 7f3c9a2e-1b4d-4e8f-9a6b-2c5d8e1f0a3b",
    "Cache-Control: no-cache",
];

fn header_args() -> impl Iterator<Item = &'static str> {
    HEADERS.iter().flat_map(|h| ["-H", *h])
}

pub fn run(protocol: Protocol, url: &str, duration: Duration) -> Result<Sample, String> {
    let secs = duration.as_secs().max(1).to_string();
    let out = match protocol {
        Protocol::H1 => Cpu::Helper
            .command("wrk")
            .args(["-t1", "-c16", "-d", &format!("{secs}s"), "--latency"])
            .args(header_args())
            .arg(url)
            .output(),
        Protocol::H2 => Cpu::Helper
            .command("h2load")
            .args(["-t1", "-c16", "-m10", "-D", &secs])
            .args(header_args())
            .arg(url)
            .output(),
    }
    .map_err(|e| format!("cannot run the load generator: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "load generator failed on {url}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    match protocol {
        Protocol::H1 => parse_wrk(&text),
        Protocol::H2 => parse_h2load(&text),
    }
    .ok_or_else(|| format!("cannot read the load generator's report for {url}:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<Sample> {
    let rps =
        text.lines().find_map(|l| l.trim().strip_prefix("Requests/sec:"))?.trim().parse().ok()?;
    let percentile = |p: &str| {
        text.lines().find_map(|l| l.trim().strip_prefix(p)).and_then(|v| millis(v.trim()))
    };
    Some(Sample { rps, p50_ms: percentile("50%"), p99_ms: percentile("99%") })
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.00s`.
fn millis(v: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else {
        (v.strip_suffix('s')?, 1000.0)
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn parse_h2load(text: &str) -> Option<Sample> {
    // "finished in 5.00s, 23456.78 req/s, 1.23MB/s"
    let line = text.lines().find(|l| l.starts_with("finished in"))?;
    let rps = line.split(", ").nth(1)?.strip_suffix(" req/s")?.parse().ok()?;
    Some(Sample { rps, p50_ms: None, p99_ms: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_and_h2load_reports() {
        let wrk = "Running 2s test\n  Latency Distribution\n     50%  812.00us\n     75%    1.00ms\n     99%    2.50ms\n  1000 requests in 2.00s\nRequests/sec:  12345.67\n";
        let s = parse_wrk(wrk).unwrap();
        assert_eq!(s.rps, 12345.67);
        assert_eq!(s.p50_ms, Some(0.812));
        assert_eq!(s.p99_ms, Some(2.5));
        let h2 = "starting benchmark...\nfinished in 5.00s, 23456.78 req/s, 1.23MB/s\nrequests: 1 total\n";
        assert_eq!(parse_h2load(h2).unwrap().rps, 23456.78);
        assert!(parse_wrk("garbage").is_none());
    }
}
