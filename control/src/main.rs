//! The `l7gate` binary: parse flags, run, map the outcome to an exit code.

use clap::Parser;

fn main() {
    let cli = l7gate::cli::Cli::parse();
    if let Err(message) = l7gate::cli::run(cli) {
        eprintln!("{message}");
        std::process::exit(1);
    }
}
