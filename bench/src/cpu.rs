//! Where the benchmark's processes run. On a machine with two or more CPUs the Envoy under test
//! has the first to itself and everything else (load generators, the upstream Envoy) shares the
//! second, so the process measured never waits for the processes measuring it, and rounds of
//! the same pair vary far less than unpinned (`taskset`, from util-linux). With one CPU nothing
//! is pinned.

use std::ffi::OsStr;
use std::process::Command;

#[derive(Debug, Clone, Copy)]
pub enum Cpu {
    /// The Envoy being measured.
    UnderTest,
    /// Load generators and the upstream.
    Helper,
}

impl Cpu {
    /// A command running `program` on this CPU.
    pub fn command(self, program: impl AsRef<OsStr>) -> Command {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus < 2 {
            return Command::new(program);
        }
        let mut command = Command::new("taskset");
        command.arg("-c").arg(match self {
            Cpu::UnderTest => "0",
            Cpu::Helper => "1",
        });
        command.arg(program);
        command
    }
}
