//! `l7gate trace`: the verdict for one request on the source's egress and the destination's
//! ingress, with the deciding policy and rule; `--json` for machines.

use l7gate_filter::config::Protocol;

use crate::envoy_path::Version;
use crate::trace::{trace, Query, Side};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Proto {
    #[value(name = "TCP")]
    Tcp,
    #[value(name = "UDP")]
    Udp,
    #[value(name = "SCTP")]
    Sctp,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    inputs: super::Judged,
    /// Source: endpoint name (`name` or `namespace/name`), node name or IP address.
    #[arg(long)]
    from: String,
    /// Destination: endpoint name, node name, IP address or DNS name.
    #[arg(long)]
    to: String,
    #[arg(long)]
    port: u16,
    #[arg(long, value_enum, default_value = "TCP")]
    protocol: Proto,
    /// HTTP method (default GET).
    #[arg(long)]
    method: Option<String>,
    /// HTTP path, query included (default /).
    #[arg(long)]
    path: Option<String>,
    /// HTTP Host / :authority as sent (default: the --to value).
    #[arg(long)]
    host: Option<String>,
    /// A request header, `Name: value`; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// TLS server name (SNI) for toFQDNs rules.
    #[arg(long)]
    sni: Option<String>,
    /// The request arrives over HTTP/2 (default HTTP/1.1, whose codec refuses more paths).
    #[arg(long)]
    http2: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    let cluster = args.inputs.load()?;
    let headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                .filter(|(n, _)| !n.is_empty())
                .ok_or_else(|| format!("--header {h:?}: write it as 'Name: value'"))
        })
        .collect::<Result<_, _>>()?;
    let query = Query {
        from: args.from,
        to: args.to,
        port: args.port,
        protocol: Some(match args.protocol {
            Proto::Tcp => Protocol::Tcp,
            Proto::Udp => Protocol::Udp,
            Proto::Sctp => Protocol::Sctp,
        }),
        method: args.method,
        path: args.path,
        host: args.host,
        headers,
        sni: args.sni,
        version: if args.http2 { Version::Http2 } else { Version::Http1 },
    };
    let t = trace(&cluster, &query)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&t).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("{}", t.request);
    if let Some(e) = t.envoy.as_ref().filter(|e| e.path.as_deref() != Some(e.sent.as_str())) {
        let answer = e.status.map(|s| format!("Envoy answers {s}: ")).unwrap_or_default();
        let path = e.path.as_deref().map(|p| format!(" -> {p}")).unwrap_or_default();
        println!("  path    {}{path} ({answer}{})", e.sent, e.explanation);
    }
    for (direction, side) in [("egress", &t.egress), ("ingress", &t.ingress)] {
        if let Some(side) = side {
            println!("  {direction:<7} {}", describe(side));
            for r in &side.rewrites {
                println!("          then {r}");
            }
        }
    }
    println!("verdict: {}", t.verdict.to_uppercase());
    Ok(())
}

/// One side's decision on one line (also `l7gate test`'s failure details).
pub(super) fn describe(s: &Side) -> String {
    let by = match (&s.kind, &s.policy, &s.rule) {
        (Some(k), Some(p), Some(r)) => format!(" [{k} {p} {r}]"),
        _ => String::new(),
    };
    format!(
        "of {} (peer {} id {}): {} — {}{by}",
        s.endpoint,
        s.peer,
        s.peer_identity,
        s.verdict.to_uppercase(),
        s.explanation
    )
}
