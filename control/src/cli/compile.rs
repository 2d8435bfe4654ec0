//! `l7gate compile`: the filter configuration of one endpoint, as JSON or as the ECDS resource
//! file an Envoy sidecar (`--filter ingress`) or its egress Envoy (`egress-http`, `egress-tls`,
//! `egress-dns`) loads.

use std::path::PathBuf;

use crate::ecds::Role;

/// Which filter the ECDS file configures (the configuration itself is the same).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Filter {
    /// The HTTP filter of `envoy/sidecar.yaml`.
    Ingress,
    /// The HTTP filter of `envoy/egress.yaml`'s plain-HTTP listener.
    EgressHttp,
    /// The network filter of `envoy/egress.yaml`'s TLS listener.
    EgressTls,
    /// The network filter of `envoy/egress.yaml`'s DNS guard listener.
    EgressDns,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// The filter configuration JSON (pretty-printed).
    Config,
    /// An ECDS DiscoveryResponse for Envoy's file-based config source (needs --wasm).
    Ecds,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    inputs: super::Judged,
    /// The endpoint (`name` or `namespace/name`) whose sidecar gets the configuration.
    #[arg(long)]
    endpoint: String,
    #[arg(long, value_enum, default_value = "config")]
    format: Format,
    /// The filter the ECDS file is for (for --format ecds).
    #[arg(long, value_enum, default_value = "ingress")]
    filter: Filter,
    /// Path of the l7gate filter .wasm, as the Envoy process will see it (for --format ecds).
    #[arg(long, value_name = "FILE")]
    wasm: Option<PathBuf>,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), String> {
    let cluster = args.inputs.load()?;
    let config = cluster.compile(cluster.endpoint(&args.endpoint)?)?;
    let text = match args.format {
        Format::Config => serde_json::to_string_pretty(&config).map_err(|e| e.to_string())?,
        Format::Ecds => {
            let wasm = args
                .wasm
                .as_deref()
                .ok_or("--format ecds needs --wasm FILE (the filter module Envoy loads)")?;
            let role = match args.filter {
                Filter::Ingress => Role::Ingress,
                Filter::EgressHttp => Role::EgressHttp,
                Filter::EgressTls => Role::EgressTls,
                Filter::EgressDns => Role::EgressDns,
            };
            crate::ecds::render_for(role, &config.to_json().map_err(|e| e.to_string())?, wasm)
        }
    };
    match &args.output {
        Some(path) => crate::ecds::write_atomically(path, &text)
            .map_err(|e| format!("{}: {e}", path.display())),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}
