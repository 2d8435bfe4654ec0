//! `l7gate serve`: the ADS management server; watches the inputs and pushes every endpoint's
//! filter config to the Envoys that front it. Logs one line per event to stdout, as text or as
//! JSON (`--log-format json`, one object per line, for log collectors). Stops cleanly on SIGTERM
//! and SIGINT, also as a container's PID 1.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::ecds::Role;
use crate::runtime::{Source, Transport};
use crate::xds::tls::TlsFiles;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A policy file or a directory of *.yaml/*.yml policy files (watched).
    #[arg(long, value_name = "PATH", required_unless_present = "kubernetes")]
    policies: Option<PathBuf>,
    /// The endpoint inventory (endpoints.yaml or `kubectl get pods -A -o yaml` output; watched).
    #[arg(long, value_name = "FILE", required_unless_present = "kubernetes")]
    endpoints: Option<PathBuf>,
    /// Read policies (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy) and the inventory
    /// (Pods, Namespaces, Nodes) from the Kubernetes API server instead, with watches, and write
    /// each policy's `Valid` condition to its status. The cluster comes from $KUBECONFIG,
    /// ~/.kube/config, or the pod's service account.
    #[arg(long, conflicts_with_all = ["policies", "endpoints"])]
    kubernetes: bool,
    #[command(flatten)]
    audit: super::AuditMode,
    /// Also serve the egress filters' resources (`l7gate-egress-http`, `-tls`, `-dns`) for
    /// egress Envoys (envoy/egress-ads.yaml). Off by default: each role repeats every config.
    #[arg(long)]
    egress: bool,
    /// Where Envoys connect (gRPC, ADS).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:18000")]
    listen: SocketAddr,
    /// Serve ADS over TLS with this certificate chain (PEM, leaf first), and require client
    /// certificates (mTLS); needs --tls-key and --client-ca. Files are re-read when they change.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "client_ca"], conflicts_with = "plaintext")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The CA certificates (PEM) Envoys' client certificates must chain to. A certificate's URI
    /// SANs spiffe://<trust domain>/ns/<namespace>/pod/<name> name the endpoints its Envoy may
    /// fetch; no other endpoint's configuration is served to it.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// The trust domain of the client certificates' SPIFFE IDs.
    #[arg(long, value_name = "NAME", default_value = "cluster.local", requires = "tls_cert")]
    trust_domain: String,
    /// Serve ADS without TLS, every endpoint's configuration to whoever connects: refused unless
    /// --listen is a loopback address (a sidecar beside the control plane, tests, the demo).
    #[arg(long)]
    plaintext: bool,
    /// Path of the l7gate filter .wasm, as the Envoy processes will see it (in their image, or
    /// a shared volume).
    #[arg(long, value_name = "FILE")]
    wasm: PathBuf,
    /// Where the HTTP side answers: `GET /status` (`l7gate status --server`), `/healthz`
    /// (liveness) and `/readyz` (200 once the inputs were valid).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9902")]
    status_listen: SocketAddr,
    /// `text` (for people) or `json` (one object per line: timestamp, level, fields, message).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

pub fn run(args: Args) -> Result<(), String> {
    let logs =
        tracing_subscriber::fmt().with_ansi(false).with_writer(std::io::stdout).with_target(false);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    // Envoy resolves a relative module path against its own cwd, not ours.
    let wasm = std::path::absolute(&args.wasm)
        .map_err(|e| format!("--wasm {}: {e}", args.wasm.display()))?;
    let settings = crate::watch::Settings {
        wasm,
        audit_mode: args.audit.audit_mode,
        roles: if args.egress { Role::ALL.to_vec() } else { vec![Role::Ingress] },
    };
    let source = match (args.policies, args.endpoints) {
        (Some(policies), Some(endpoints)) => {
            Source::Files(crate::watch::Inputs { policies, endpoints })
        }
        _ if args.kubernetes => Source::Kubernetes,
        _ => return Err("give --policies and --endpoints, or --kubernetes".into()),
    };
    let transport = match (args.tls_cert, args.tls_key, args.client_ca) {
        (Some(cert), Some(key), Some(client_ca)) => Transport::Mtls {
            files: TlsFiles { cert, key, client_ca },
            trust_domain: args.trust_domain,
        },
        _ if args.plaintext => Transport::Plaintext,
        _ => {
            return Err("choose how Envoys connect: --tls-cert, --tls-key and --client-ca \
                        (mTLS, each Envoy fetches only the endpoints its certificate names), or \
                        --plaintext (loopback addresses only)"
                .into())
        }
    };
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(crate::runtime::serve(
        source,
        settings,
        (args.listen, transport),
        args.status_listen,
    ))
}
