//! `l7gate test`: runs policy tests (`PolicyTest` YAML, see `policy_test`) against a policy set
//! and an inventory; prints a table of results and the details of each failure; `--junit`
//! writes the results for CI systems. Exit 1 if any case fails.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::policy_test::{self, judged, Outcome};
use crate::trace::{Side, Trace};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    inputs: super::Judged,
    /// Files or directories of policy tests (objects of kind PolicyTest; other objects in them,
    /// such as the policies themselves, are skipped).
    #[arg(required = true, value_name = "TESTS")]
    tests: Vec<PathBuf>,
    /// Also write the results as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), String> {
    let suite = policy_test::load(&args.tests).map_err(|e| e.to_string())?;
    let cluster = args.inputs.load()?;
    let outcomes = policy_test::run(&cluster, &suite);
    print!("{}", table(&outcomes));
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&outcomes))
            .map_err(|e| format!("{}: cannot write the JUnit report: {e}", path.display()))?;
    }
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    let skipped = match suite.skipped {
        0 => String::new(),
        n => format!(" ({n} other objects in the test files skipped)"),
    };
    println!(
        "{} cases: {} passed, {failed} failed{skipped}",
        outcomes.len(),
        outcomes.len() - failed
    );
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} of {} policy test cases failed", outcomes.len())),
    }
}

/// The result table (one row per case), then the details of every case that failed.
pub fn table(outcomes: &[Outcome]) -> String {
    let rows: Vec<[String; 5]> = outcomes
        .iter()
        .map(|o| {
            let (got, by) = match &o.trace {
                Ok(t) => match judged(t, o.case.at) {
                    Ok(j) => (j.verdict.to_string(), decided_by(t, &j.sides)),
                    Err(_) => ("error".to_string(), String::new()),
                },
                Err(_) => ("error".to_string(), String::new()),
            };
            let result = if o.passed() { "pass" } else { "FAIL" };
            [result.into(), o.case.name.clone(), o.case.expect.verdict.into(), got, by]
        })
        .collect();
    let header = ["RESULT", "CASE", "EXPECTED", "GOT", "DECIDED BY"].map(String::from);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        line.push_str(&row[4]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for o in outcomes.iter().filter(|o| !o.passed()) {
        out.push_str(&details(o));
    }
    out
}

/// What decided a trace's verdict: the deciding sides' policy and rule, else their reason.
fn decided_by(t: &Trace, sides: &[(&str, &Side)]) -> String {
    let sides: Vec<String> = sides
        .iter()
        .map(|(direction, s)| {
            let what = match (&s.policy, &s.rule) {
                (Some(p), Some(r)) => {
                    let http = s.http_rule.map(|n| format!(".rules.http[{n}]")).unwrap_or_default();
                    format!("{p} {r}{http}")
                }
                _ => s.reason.to_string(),
            };
            format!("{direction} {what}")
        })
        .collect();
    match (sides.is_empty(), &t.envoy) {
        (true, Some(e)) => format!("Envoy {}", e.status.map_or(String::new(), |s| s.to_string())),
        _ => sides.join("; "),
    }
}

/// A failed case: where it is, the request as judged, each side, and how it missed.
fn details(o: &Outcome) -> String {
    let mut out = format!("\nFAIL {} ({})\n", o.case.name, o.case.location());
    match &o.trace {
        Err(e) => {
            let _ = writeln!(out, "  cannot judge the request: {e}");
        }
        Ok(t) => {
            let _ = writeln!(out, "  request {}", t.request);
            if let Some(e) = &t.envoy {
                if e.path.as_deref() != Some(e.sent.as_str()) {
                    let _ = writeln!(out, "  path    {} ({})", e.sent, e.explanation);
                }
            }
            for (direction, side) in [("egress", &t.egress), ("ingress", &t.ingress)] {
                if let Some(side) = side {
                    let _ = writeln!(out, "  {direction:<7} {}", super::trace::describe(side));
                }
            }
            for f in &o.failures {
                let _ = writeln!(out, "  {f}");
            }
        }
    }
    out
}

/// The results as JUnit XML: one test suite per `PolicyTest` object, one test case per case.
pub fn junit(outcomes: &[Outcome]) -> String {
    let mut groups: Vec<(&str, Vec<&Outcome>)> = Vec::new();
    for o in outcomes {
        match groups.iter_mut().find(|(g, _)| *g == o.case.group) {
            Some((_, list)) => list.push(o),
            None => groups.push((&o.case.group, vec![o])),
        }
    }
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"l7gate policy tests\" tests=\"{}\" failures=\"{failed}\">",
        outcomes.len()
    );
    for (group, list) in groups {
        let failed = list.iter().filter(|o| !o.passed()).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\">",
            xml(group),
            list.len()
        );
        for o in list {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" line=\"{}\"",
                xml(group),
                xml(&o.case.name),
                xml(&o.case.file.display().to_string()),
                o.case.span.line
            );
            if o.passed() {
                out.push_str("/>\n");
                continue;
            }
            let message = match &o.trace {
                Err(e) => format!("cannot judge the request: {e}"),
                Ok(_) => o.failures.join("; "),
            };
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                xml(&message),
                xml(details(o).trim())
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Text escaped for XML attributes and content; characters XML 1.0 cannot hold become U+FFFD.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
