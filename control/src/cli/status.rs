//! `l7gate status`: asks a running `l7gate serve` what each Envoy has (`GET /status`) and prints
//! a table, or the JSON document with `--json`.

use std::net::SocketAddr;

use crate::xds::report::{fetch, StatusReport};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's status address (its --status-listen).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9902")]
    server: SocketAddr,
    /// Print the JSON document.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    let report = fetch(args.server)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

/// The report for people.
pub fn table(report: &StatusReport) -> String {
    let mut out = format!("policy generation {}", report.reload.generation);
    match &report.reload.error {
        Some(e) => {
            out.push_str(&format!("; last reload FAILED, the previous state is in force:\n{e}\n"))
        }
        None => out.push_str("; inputs valid\n"),
    }
    let mut rows =
        vec![["NODE", "ENDPOINT", "STATE", "ACKED", "PENDING", "LAST NACK"].map(String::from)];
    let mut notes = Vec::new();
    for n in &report.nodes {
        let state = if n.connected { "connected" } else { "gone" };
        if let Some(e) = &n.error {
            notes.push(format!("{}: {e}", n.node));
        }
        if n.resources.is_empty() {
            rows.push([
                n.node.clone(),
                n.endpoint.clone(),
                state.into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for r in &n.resources {
            let nack = r.last_nack.as_ref().map_or("-".to_string(), |k| {
                notes.push(format!("{} rejected {}: {}", n.node, k.version, k.message));
                k.version.clone()
            });
            let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            rows.push([
                n.node.clone(),
                n.endpoint.clone(),
                state.into(),
                opt(&r.acked),
                opt(&r.pending),
                nack,
            ]);
        }
    }
    let widths: Vec<usize> =
        (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for note in notes {
        out.push_str(&format!("  {note}\n"));
    }
    out
}
