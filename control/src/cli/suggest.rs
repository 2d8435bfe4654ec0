//! `l7gate suggest`: policies from recorded flows (see `suggest`), written to stdout or a file,
//! with a summary on stderr; `--tests` also writes a `PolicyTest` of the observed requests.

use std::path::PathBuf;

use crate::suggest::{records, suggest};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Flow logs (the sidecars' access-log JSON lines; other lines are skipped).
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    flows: Vec<PathBuf>,
    /// The endpoint inventory: which addresses are which workloads.
    #[arg(long, value_name = "FILE")]
    endpoints: PathBuf,
    /// Existing policies: only the flows they deny are turned into new rules.
    #[arg(long, value_name = "PATH")]
    policies: Option<PathBuf>,
    /// Only for this endpoint (`name` or `namespace/name`) or these labels (`app=x[,k=v]`).
    #[arg(long = "for", value_name = "NAME|SELECTOR")]
    only: Option<String>,
    /// Write the policies here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Also write a PolicyTest of the observed requests (each expected to be allowed).
    #[arg(long, value_name = "FILE")]
    tests: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), String> {
    let cluster = match &args.policies {
        Some(policies) => super::load(&super::Inputs {
            policies: policies.clone(),
            endpoints: args.endpoints.clone(),
        })?,
        None => {
            let inventory = crate::inventory::load(&args.endpoints).map_err(|e| e.to_string())?;
            crate::compile::Cluster::new(Vec::new(), inventory)
        }
    };
    let mut flows = Vec::new();
    for path in &args.flows {
        let text = crate::yaml::read_input(path).map_err(|e| format!("{}: {e}", path.display()))?;
        flows.extend(records(path, &text));
    }
    let s = suggest(&cluster, &flows, args.only.as_deref())?;
    let write = |path: &PathBuf, text: &str| {
        std::fs::write(path, text).map_err(|e| format!("{}: cannot write: {e}", path.display()))
    };
    match &args.out {
        Some(path) => write(path, &s.yaml)?,
        None => print!("{}", s.yaml),
    }
    if let Some(path) = &args.tests {
        write(path, &s.tests)?;
    }
    let basis = match args.policies {
        Some(_) => format!("{} flows the existing policies deny", s.used),
        None => format!("{} flows", s.used),
    };
    eprintln!(
        "suggested {} policies with {} rules from {basis}; checked: valid, compiled, and all {} \
         replayed flows allowed",
        s.policies, s.rules, s.checked
    );
    Ok(())
}
