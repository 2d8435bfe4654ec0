//! `l7gate validate`: parse and validate policies; with an inventory, also compile every endpoint.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A policy file or a directory of *.yaml/*.yml policy files.
    #[arg(long, value_name = "PATH")]
    policies: PathBuf,
    /// Also load this inventory and compile every endpoint's configuration.
    #[arg(long, value_name = "FILE")]
    endpoints: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), String> {
    let loaded = crate::cilium::parse::load_path(&args.policies).map_err(|e| e.to_string())?;
    // With an inventory, loading it again below reports them (once).
    if args.endpoints.is_none() {
        super::report(&loaded.warnings, &loaded.notes);
    }
    let rules: usize = loaded.policies.iter().map(|p| p.rules.len()).sum();
    let mut summary = format!(
        "{}: {} policies, {rules} rules: valid",
        args.policies.display(),
        loaded.policies.len()
    );
    if let Some(endpoints) = &args.endpoints {
        let inputs =
            super::Inputs { policies: args.policies.clone(), endpoints: endpoints.clone() };
        let cluster = super::load(&inputs)?;
        cluster.check_all()?;
        summary
            .push_str(&format!("; compiled for {} endpoints", cluster.inventory.endpoints.len()));
    }
    println!("{summary}");
    Ok(())
}
