//! `l7gate serve`: the ADS management server; watches the inputs and pushes every endpoint's
//! filter config to the Envoys that front it. Logs one line per event to stdout, as text or as
//! JSON (`--log-format json`, one object per line, for log collectors). Stops cleanly on SIGTERM
//! and SIGINT, also as a container's PID 1.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::ecds::Role;
use crate::watch::ModuleSource;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    inputs: super::Inputs,
    #[command(flatten)]
    audit: super::AuditMode,
    /// Also serve the egress filters' resources (`l7gate-egress-http`, `l7gate-egress-tls`) for
    /// egress Envoys (envoy/egress-ads.yaml). Off by default: each role repeats every config.
    #[arg(long)]
    egress: bool,
    /// Where Envoys connect (gRPC, ADS).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:18000")]
    listen: SocketAddr,
    #[command(flatten)]
    module: Module,
    /// Where the HTTP side answers: `GET /status` (`l7gate status --server`), `/healthz`,
    /// `/readyz`, and `/wasm/<sha256>.wasm` with --serve-wasm.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9902")]
    status_listen: SocketAddr,
    /// `text` (for people) or `json` (one object per line: timestamp, level, fields, message).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
}

/// Where the Envoys get the filter module: exactly one of the two.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct Module {
    /// Path of the l7gate filter .wasm as the Envoys see it (in their image, or a shared volume).
    #[arg(long, value_name = "FILE")]
    wasm: Option<PathBuf>,
    /// Serve this .wasm over HTTP on --status-listen; Envoys fetch it through their bootstrap
    /// cluster `l7gate_control` and load it only if its SHA-256 matches (re-read at every reload).
    #[arg(long, value_name = "FILE")]
    serve_wasm: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

pub fn run(args: Args) -> Result<(), String> {
    let logs = tracing_subscriber::fmt().with_ansi(false).with_writer(std::io::stdout).with_target(false);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let absolute = |flag: &str, path: &PathBuf| {
        std::path::absolute(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
    };
    let module = match (args.module.wasm, args.module.serve_wasm) {
        // Envoy resolves a relative module path against its own cwd, not ours.
        (Some(path), _) => ModuleSource::Path(absolute("--wasm", &path)?),
        (None, Some(path)) => ModuleSource::Served(absolute("--serve-wasm", &path)?),
        (None, None) => return Err("one of --wasm and --serve-wasm is required".into()),
    };
    let inputs = crate::watch::Inputs { policies: args.inputs.policies, endpoints: args.inputs.endpoints, module,
        audit_mode: args.audit.audit_mode,
        roles: if args.egress { Role::ALL.to_vec() } else { vec![Role::Ingress] },
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(crate::xds::serve(inputs, args.listen, args.status_listen))
}
