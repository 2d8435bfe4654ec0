//! The `l7gate` command line: flag definitions (clap) and dispatch to one module per command.
//! Exit codes: 0 success (including a `deny` verdict), 1 bad input or a failed policy test, 2
//! usage error.

mod certs;
mod compile;
mod diff;
mod observe;
mod serve;
mod status;
mod suggest;
mod test;
mod trace;
mod validate;

use std::path::PathBuf;

use crate::diag::Diagnostic;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "l7gate", version, about = "Cilium-compatible L7 and FQDN policy for Envoy")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where policies and the endpoint inventory come from.
#[derive(Debug, clap::Args)]
pub struct Inputs {
    /// A policy file or a directory of *.yaml/*.yml policy files.
    #[arg(long, value_name = "PATH")]
    pub policies: PathBuf,
    /// The endpoint inventory (endpoints.yaml or `kubectl get pods -A -o yaml` output).
    #[arg(long, value_name = "FILE")]
    pub endpoints: PathBuf,
}

/// The global audit switch of the commands that compile policies.
#[derive(Debug, clap::Args)]
pub struct AuditMode {
    /// Put every policy in audit mode (spec §8): nothing is denied; would-be denials are let
    /// through and reported with verdict `audit` (one policy: annotation `l7gate.io/audit-mode: "true"`).
    #[arg(long)]
    pub audit_mode: bool,
}

/// The inputs of the commands that judge requests as the sidecars would: policies, inventory
/// and the audit switch.
#[derive(Debug, clap::Args)]
pub struct Judged {
    #[command(flatten)]
    pub inputs: Inputs,
    #[command(flatten)]
    pub audit: AuditMode,
}

impl Judged {
    /// The cluster, loaded as [`load`] does, in audit mode if asked.
    fn load(&self) -> Result<crate::compile::Cluster, String> {
        Ok(load(&self.inputs)?.with_audit_mode(self.audit.audit_mode))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check policies (and, with --endpoints, compile every endpoint); exit 1 on any error.
    Validate(validate::Args),
    /// Print the filter configuration of one endpoint.
    Compile(compile::Args),
    /// Say whether a request would be allowed, and which policy rule decided.
    Trace(trace::Args),
    /// Run policy tests (PolicyTest YAML): each request must get its expected verdict; exit 1 if
    /// any does not.
    Test(test::Args),
    /// Serve every endpoint's filter config to Envoys over ADS, following file changes.
    Serve(serve::Args),
    /// Show what a running `l7gate serve` has pushed, and what each Envoy acked or rejected.
    Status(status::Args),
    /// Read flow logs (the sidecars' access logs): filter, print a table or JSON, follow.
    Observe(observe::Args),
    /// Compare two policy sets: rule changes per endpoint, and recorded flows that would flip.
    Diff(diff::Args),
    /// Policies from recorded flows: allow exactly the traffic seen, paths generalised.
    Suggest(suggest::Args),
    /// Write a development CA and certificates for `l7gate serve`'s mTLS and its Envoys.
    Certs(certs::Args),
}

/// Runs a parsed command line; `Err` carries the message for stderr.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Compile(args) => compile::run(args),
        Command::Trace(args) => trace::run(args),
        Command::Test(args) => test::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Status(args) => status::run(args),
        Command::Observe(args) => observe::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Suggest(args) => suggest::run(args),
        Command::Certs(args) => certs::run(args),
    }
}

/// Loads inputs, printing warnings and notes to stderr; errors come back rendered.
fn load(inputs: &Inputs) -> Result<crate::compile::Cluster, String> {
    let loaded = crate::load(&inputs.policies, &inputs.endpoints).map_err(|e| e.to_string())?;
    report(&loaded.warnings, &loaded.notes);
    Ok(loaded.cluster)
}

/// What a successful load wants the user to know, one line each on stderr.
fn report(warnings: &[Diagnostic], notes: &[Diagnostic]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
    for n in notes {
        eprintln!("note: {n}");
    }
}
