//! `l7gate serve`: the ADS management server; watches the inputs and pushes every endpoint's
//! filter config to the Envoys that front it. Logs one line per event to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::ecds::Role;

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
    /// Path of the l7gate filter .wasm, as the Envoy processes will see it.
    #[arg(long, value_name = "FILE")]
    wasm: PathBuf,
    /// Where `GET /status` answers (`l7gate status --server`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9902")]
    status_listen: SocketAddr,
}

pub fn run(args: Args) -> Result<(), String> {
    tracing_subscriber::fmt().with_ansi(false).with_writer(std::io::stderr).with_target(false).init();
    // Envoy resolves a relative module path against its own cwd, not ours.
    let wasm = std::path::absolute(&args.wasm).map_err(|e| format!("--wasm {}: {e}", args.wasm.display()))?;
    let inputs = crate::watch::Inputs { policies: args.inputs.policies, endpoints: args.inputs.endpoints, wasm,
        audit_mode: args.audit.audit_mode,
        roles: if args.egress { Role::ALL.to_vec() } else { vec![Role::Ingress] },
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(crate::xds::serve(inputs, args.listen, args.status_listen))
}
