//! `l7gate diff`: rule changes between two policy sets per endpoint and direction; with
//! `--flows`, the recorded flows whose verdict the change would flip.

use std::path::PathBuf;

use crate::diff::{replay, rule_changes, FlowChange, RuleChange};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The current policies (a file or a directory of *.yaml/*.yml).
    #[arg(long, value_name = "PATH")]
    old: PathBuf,
    /// The proposed policies.
    #[arg(long, value_name = "PATH")]
    new: PathBuf,
    /// The endpoint inventory both are compiled against.
    #[arg(long, value_name = "FILE")]
    endpoints: PathBuf,
    /// A recorded flow log (`l7gate observe` input) to replay through both.
    #[arg(long, value_name = "FILE")]
    flows: Option<PathBuf>,
    /// Print one JSON object: `{"rules": [...], "flows": [...]}`.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    let load = |policies: &PathBuf| {
        super::load(&super::Inputs {
            policies: policies.clone(),
            endpoints: args.endpoints.clone(),
        })
    };
    let (old, new) = (load(&args.old)?, load(&args.new)?);
    let rules = rule_changes(&old, &new)?;
    let flows = match &args.flows {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(replay(&old, &new, &text).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    if args.json {
        let doc = serde_json::json!({ "rules": rules, "flows": flows });
        println!("{}", serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?);
    } else {
        print!("{}", text(&rules, flows.as_deref()));
    }
    Ok(())
}

/// The report for people.
pub fn text(rules: &[RuleChange], flows: Option<&[FlowChange]>) -> String {
    let mut out = String::new();
    if rules.is_empty() {
        out.push_str("no rule changes\n");
    }
    let mut heading = None;
    for c in rules {
        let here = (c.endpoint.as_str(), c.direction);
        if heading != Some(here) {
            heading = Some(here);
            out.push_str(&format!("{} {}:\n", c.endpoint, c.direction));
        }
        let old = c.old.as_deref().unwrap_or("");
        let new = c.new.as_deref().unwrap_or("");
        match c.change {
            "enforcement" => out.push_str(&format!("  ~ {old} -> {new}\n")),
            "added" => out.push_str(&format!("  + {} {}: {new}\n", c.policy, c.rule)),
            "removed" => out.push_str(&format!("  - {} {}: {old}\n", c.policy, c.rule)),
            _ => out.push_str(&format!(
                "  ~ {} {}:\n      was {old}\n      now {new}\n",
                c.policy, c.rule
            )),
        }
    }
    if let Some(flows) = flows {
        out.push_str(&format!("{} recorded flows would change verdict\n", flows.len()));
        for f in flows {
            let by = |o: &crate::diff::Outcome| match (&o.policy, &o.rule) {
                (Some(p), Some(r)) => format!("{} ({}: {p} {r})", o.verdict, o.reason),
                _ => format!("{} ({})", o.verdict, o.reason),
            };
            out.push_str(&format!(
                "  line {}: {} {} -> {} {}: {} -> {}\n",
                f.line,
                f.direction,
                f.from,
                f.to,
                f.request,
                by(&f.old),
                by(&f.new)
            ));
        }
    }
    out
}
