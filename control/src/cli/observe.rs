//! `l7gate observe`: reads flow-log lines (a file or stdin), keeps those matching the filters and
//! prints them as a table or, with `--json`, as the original JSON lines; `-f` keeps reading as
//! the file grows.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::flow::{parse_since, Filter, Flow};

/// How often `-f` looks for new lines at the end of a file.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum VerdictArg {
    Allowed,
    Denied,
    Audit,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The flow log (Envoy's access log); `-` or omitted: stdin.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Only flows with this verdict.
    #[arg(long, value_enum)]
    verdict: Option<VerdictArg>,
    /// Only flows from this source: IP, identity name (`namespace/name`) or bare name.
    #[arg(long)]
    from: Option<String>,
    /// Only flows to this destination: IP, identity name or bare name.
    #[arg(long)]
    to: Option<String>,
    /// Only flows decided by this policy (`namespace/name` or name).
    #[arg(long)]
    policy: Option<String>,
    /// Only flows at or after this time: RFC 3339 (2026-11-24T13:00:00Z) or a duration ago (15m).
    #[arg(long)]
    since: Option<String>,
    /// Print matching records as JSON lines (as logged) instead of a table.
    #[arg(long)]
    json: bool,
    /// Keep reading: wait for lines appended to the file.
    #[arg(long, short)]
    follow: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    let filter = Filter {
        verdict: args.verdict.map(|v| format!("{v:?}").to_lowercase()),
        from: args.from,
        to: args.to,
        policy: args.policy,
        since_millis: args
            .since
            .as_deref()
            .map(|s| parse_since(s, SystemTime::now()))
            .transpose()?,
    };
    let input: Box<dyn Read> = match args.file.as_deref().filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            Box::new(std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => Box::new(std::io::stdin()),
    };
    let mut reader = BufReader::new(input);
    let mut out = std::io::stdout().lock();
    let mut printer = Printer { json: args.json, header_done: false };
    let mut line = String::new();
    loop {
        // A partial last line (the writer is mid-line) waits for the rest when following.
        let n = reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 || (args.follow && !line.ends_with('\n')) {
            if !args.follow {
                break;
            }
            std::thread::sleep(FOLLOW_POLL);
            continue;
        }
        if let Some(flow) = Flow::parse(&line).filter(|f| filter.keeps(f)) {
            let ok = printer.print(&mut out, line.trim_end(), &flow).and_then(|()| out.flush());
            if ok.is_err() {
                return Ok(()); // stdout closed (e.g. piped into head)
            }
        }
        line.clear();
    }
    Ok(())
}

struct Printer {
    json: bool,
    header_done: bool,
}

impl Printer {
    fn print(&mut self, out: &mut impl Write, raw: &str, f: &Flow) -> std::io::Result<()> {
        if self.json {
            return writeln!(out, "{raw}");
        }
        if !self.header_done {
            self.header_done = true;
            writeln!(
                out,
                "{}",
                row(["TIME", "DIR", "FROM", "TO", "REQUEST", "VERDICT", "CODE", "DECIDED BY"])
            )?;
        }
        let code = if f.response_code == 0 { "-".to_string() } else { f.response_code.to_string() };
        let request = f.request();
        let decided = f.decided_by();
        writeln!(
            out,
            "{}",
            row([
                &f.time,
                &f.direction,
                f.src.label(),
                f.dst.label(),
                &request,
                &f.verdict,
                &code,
                &decided
            ])
        )
    }
}

/// Fixed-width columns (the table streams, so widths cannot depend on later rows).
fn row(cells: [&str; 8]) -> String {
    const WIDTHS: [usize; 7] = [24, 7, 22, 22, 44, 7, 4];
    let mut out = String::new();
    for (cell, width) in cells.iter().zip(WIDTHS) {
        out.push_str(&format!("{cell:<width$} "));
    }
    out.push_str(cells[7]);
    out
}
