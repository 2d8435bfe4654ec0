//! The `l7gate` binary as users run it: `trace` gives the seed scenario's verdicts with the
//! deciding rule, `validate` and `compile` report bad input with located errors and exit 1,
//! `observe` filters flow logs.

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn l7gate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_l7gate"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run l7gate")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `l7gate trace` on the seed manifests.
fn run_trace(extra: &[&str]) -> Output {
    let mut args = vec![
        "trace",
        "--policies",
        "manifests/policies",
        "--endpoints",
        "manifests/endpoints.yaml",
    ];
    args.extend_from_slice(extra);
    l7gate(&args)
}

/// `l7gate trace --json` on the seed manifests; returns the parsed object.
fn trace(extra: &[&str]) -> serde_json::Value {
    let out = run_trace(&[&["--json"], extra].concat());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "trace {extra:?} failed: {stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("trace printed invalid JSON ({e}): {stdout}"))
}

/// The trace of `GET /api/inventory/1` from `from` to inventory-api:8080.
fn read_inventory(from: &str) -> serde_json::Value {
    trace(&[
        "--from",
        from,
        "--to",
        "inventory-api",
        "--port",
        "8080",
        "--path",
        "/api/inventory/1",
    ])
}

fn verdict(extra: &[&str]) -> String {
    trace(extra)["verdict"].as_str().unwrap_or_default().to_string()
}

/// The seed scenario (issue: frontend reads inventory; payments only by POST; spec §5.2 anchoring).
#[test]
fn seed_scenario_verdicts() {
    let inv = ["--from", "frontend", "--to", "inventory-api", "--port", "8080"];
    let with = |extra: &[&'static str]| [inv.as_slice(), extra].concat();
    assert_eq!(verdict(&with(&["--method", "GET", "--path", "/api/inventory/item123"])), "allow");
    assert_eq!(verdict(&with(&["--method", "DELETE", "--path", "/api/inventory/item123"])), "deny");
    assert_eq!(verdict(&with(&["--method", "POST", "--path", "/api/inventory/item123"])), "deny");
    assert_eq!(verdict(&with(&["--method", "GET", "--path", "/api/other"])), "deny");
    assert_eq!(
        verdict(&with(&["--method", "GET", "--path", "/api/inventory"])),
        "deny",
        "full match: no trailing slash"
    );
    let pay = [
        "--from",
        "frontend",
        "--to",
        "payment-gateway",
        "--port",
        "8080",
        "--path",
        "/process-payment",
    ];
    assert_eq!(verdict(&[pay.as_slice(), &["--method", "POST"]].concat()), "allow");
    assert_eq!(verdict(&[pay.as_slice(), &["--method", "GET"]].concat()), "deny");
    // Another workload, and an address outside the inventory (world).
    assert_eq!(
        verdict(&[
            "--from",
            "reporting",
            "--to",
            "inventory-api",
            "--port",
            "8080",
            "--path",
            "/api/inventory/x"
        ]),
        "deny"
    );
    assert_eq!(
        verdict(&[
            "--from",
            "127.0.0.5",
            "--to",
            "inventory-api",
            "--port",
            "8080",
            "--path",
            "/api/inventory/x"
        ]),
        "deny"
    );
    // spec §4.1 case 1: no policy selects catalog's ingress.
    assert_eq!(verdict(&["--from", "reporting", "--to", "catalog", "--port", "8080"]), "allow");
}

/// The deciding policy and rule are named on both sides (spec §8: verdicts say which policy).
#[test]
fn trace_names_the_deciding_rules() {
    let t = read_inventory("frontend");
    assert_eq!(t["egress"]["verdict"], "allow");
    assert_eq!(t["egress"]["kind"], "CiliumClusterwideNetworkPolicy");
    assert_eq!(t["egress"]["policy"], "egress-allowlist");
    assert_eq!(t["egress"]["rule"], "spec.egress[0]");
    assert_eq!(t["ingress"]["verdict"], "allow");
    assert_eq!(t["ingress"]["reason"], "allowed-l7");
    assert_eq!(t["ingress"]["policy"], "default/inventory-api-l7");
    assert_eq!(t["ingress"]["rule"], "spec.ingress[0].toPorts[0]");
    assert_eq!(t["ingress"]["peer"], "default/frontend");

    let denied = trace(&["--from", "reporting", "--to", "inventory-api", "--port", "8080"]);
    assert_eq!(denied["ingress"]["reason"], "default-deny");
    assert!(denied["ingress"].get("policy").is_none(), "default deny has no deciding rule");
    let l7 = trace(&[
        "--from",
        "frontend",
        "--to",
        "inventory-api",
        "--port",
        "8080",
        "--method",
        "DELETE",
        "--path",
        "/api/inventory/1",
    ]);
    assert_eq!(l7["ingress"]["reason"], "denied-l7-no-rule-matched");
    assert_eq!(l7["ingress"]["policy"], "default/inventory-api-l7");
}

/// spec §6.2/§6.4: egress by name through the seed CCNP.
#[test]
fn trace_fqdn_egress() {
    let t = trace(&[
        "--from",
        "frontend",
        "--to",
        "api.example.com",
        "--port",
        "443",
        "--sni",
        "api.example.com",
    ]);
    assert_eq!(t["verdict"], "allow");
    assert_eq!(t["egress"]["rule"], "spec.egress[1].toPorts[0]");
    assert!(t.get("ingress").is_none(), "a DNS name has no ingress side");
    for (name, port) in [
        ("example.com", "443"),
        ("a.b.example.com", "443"),
        ("evil-example.com", "443"),
        ("api.example.com", "8443"),
    ] {
        assert_eq!(
            verdict(&["--from", "frontend", "--to", name, "--port", port, "--sni", name]),
            "deny",
            "{name}:{port}"
        );
    }
}

#[test]
fn trace_human_output_and_bad_input() {
    let out = l7gate(&[
        "trace",
        "--policies",
        "manifests/policies",
        "--endpoints",
        "manifests/endpoints.yaml",
        "--from",
        "frontend",
        "--to",
        "inventory-api",
        "--port",
        "8080",
        "--method",
        "DELETE",
        "--path",
        "/api/inventory/1",
    ]);
    let (stdout, _) = text(&out);
    assert!(out.status.success(), "a deny verdict exits 0");
    assert!(stdout.contains("verdict: DENY"), "{stdout}");
    assert!(stdout.contains("default/inventory-api-l7"), "{stdout}");

    let out = run_trace(&["--from", "nobody", "--to", "inventory-api", "--port", "8080"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("no endpoint named \"nobody\""), "{stderr}");
}

#[test]
fn validate_accepts_the_seed_and_rejects_bad_files_with_locations() {
    let out = l7gate(&[
        "validate",
        "--policies",
        "manifests/policies",
        "--endpoints",
        "manifests/endpoints.yaml",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("3 policies"), "{stdout}");

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: bad\n  namespace: default\nspec:\n  endpointSelector: {}\n  ingress:\n    - toPorts:\n        - ports: [{port: \"80\", protocol: TCP}]\n          rules:\n            http:\n              - path: \"(\"\n",
    )
    .expect("write");
    let out = l7gate(&["validate", "--policies", bad.to_str().unwrap_or_default()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "bad.yaml:13:23: spec.ingress[0].toPorts[0].rules.http[0].path: invalid regex \"(\""
        ),
        "{stderr}"
    );
}

#[test]
fn compile_prints_the_filter_config() {
    let out = l7gate(&[
        "compile",
        "--policies",
        "manifests/policies",
        "--endpoints",
        "manifests/endpoints.yaml",
        "--endpoint",
        "inventory-api",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let config: l7gate_filter::config::Config = serde_json::from_str(&stdout).expect("config JSON");
    assert_eq!(config.endpoint.name, "inventory-api");
    assert!(config.ingress.enforced);
    assert!(config.egress.enforced, "the seed CCNP selects every endpoint's egress");
    assert!(
        config.ipcache.iter().any(|e| e.cidr == "127.0.0.2/32"),
        "frontend's address is in the ipcache"
    );
}

/// spec §8: `--audit-mode` on `trace` and `compile`: the seed's denials become `audit`, and the
/// compiled config carries audit views next to directions that no longer enforce.
#[test]
fn audit_mode_flag_on_trace_and_compile() {
    let delete = [
        "--from",
        "frontend",
        "--to",
        "inventory-api",
        "--port",
        "8080",
        "--method",
        "DELETE",
        "--path",
        "/api/inventory/1",
    ];
    let t = trace(&[delete.as_slice(), &["--audit-mode"]].concat());
    assert_eq!(
        (t["verdict"].as_str(), t["ingress"]["verdict"].as_str()),
        (Some("audit"), Some("audit"))
    );
    assert_eq!(t["ingress"]["reason"], "denied-l7-no-rule-matched");
    assert_eq!(t["ingress"]["policy"], "default/inventory-api-l7");
    assert_eq!(verdict(&delete), "deny", "without the flag the seed denies it");
    let out = l7gate(&[
        "trace",
        "--policies",
        "manifests/policies",
        "--endpoints",
        "manifests/endpoints.yaml",
        "--audit-mode",
        "--from",
        "reporting",
        "--to",
        "inventory-api",
        "--port",
        "8080",
    ]);
    assert!(text(&out).0.contains("verdict: AUDIT"), "{}", text(&out).0);

    let args = [
        "compile",
        "--policies",
        "manifests/policies",
        "--endpoints",
        "manifests/endpoints.yaml",
        "--endpoint",
        "inventory-api",
        "--audit-mode",
    ];
    let out = l7gate(&args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let config: l7gate_filter::config::Config = serde_json::from_str(&stdout).expect("config JSON");
    assert!(
        !config.ingress.enforced && !config.egress.enforced,
        "nothing is enforced in audit mode"
    );
    assert!(config.ingress.audit.as_deref().is_some_and(|v| v.enforced && !v.rules.is_empty()));
    assert!(config.egress.audit.is_some());
}

// spec §8: `observe` keeps the flow records matching its filters, skips other log lines, and
// prints them as logged (--json) or as a table.
#[test]
fn observe_filters_flow_records_and_prints_a_table_or_json() {
    let record = |verdict: &str, src: &str| {
        format!(
            r#"{{"time":"2026-11-24T13:13:34.577Z","response_code":403,"direction":"ingress","verdict":"{verdict}","reason":"default-deny","endpoint":"default/inventory-api","src":{{"ip":"{src}","name":"default/reporting"}},"dst":{{"ip":"127.0.0.10"}},"port":8080,"protocol":"TCP","method":"GET","path":"/api/x","host":"inventory-api:8080"}}"#
        )
    };
    let denied = record("denied", "127.0.0.3");
    let log = format!(
        "{}\n[2026-11-24T13:13:34.577Z] a plain access log line\n{denied}\n",
        record("allowed", "127.0.0.2")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("flows.log");
    std::fs::write(&file, log).expect("write");
    let file = file.to_str().expect("utf-8 path");

    let out = l7gate(&["observe", file, "--verdict", "denied", "--from", "reporting", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, format!("{denied}\n"));

    let out = l7gate(&["observe", file, "--since", "2026-11-24T13:13:35Z"]);
    assert_eq!(text(&out).0, "", "nothing is that recent");

    let out = l7gate(&["observe", file, "--to", "127.0.0.10"]);
    let (stdout, _) = text(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("TIME") && lines[0].contains("DECIDED BY"), "{stdout}");
    assert!(
        lines[2].contains("default/reporting")
            && lines[2].contains("GET inventory-api:8080/api/x")
            && lines[2].contains("denied"),
        "{stdout}"
    );
}

/// `serve --log-format json` logs one JSON object per line on stdout, and SIGINT/SIGTERM stop it
/// with exit 0 (what `docker stop` and Kubernetes send).
#[test]
fn serve_logs_json_lines_and_stops_cleanly_on_signals() {
    use std::io::{BufRead, BufReader};
    for signal in ["-TERM", "-INT"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_l7gate"))
            .args([
                "serve",
                "--policies",
                "manifests/policies",
                "--endpoints",
                "manifests/endpoints.yaml",
                "--wasm",
                "/nonexistent.wasm",
            ])
            .args([
                "--listen",
                "127.0.0.1:0",
                "--plaintext",
                "--status-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .current_dir(repo())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run l7gate serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut messages = Vec::new();
        for line in lines.by_ref() {
            let line = line.expect("utf-8 log line");
            let event: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(event["timestamp"].is_string() && event["level"].is_string(), "{line}");
            let message = event["message"].as_str().unwrap_or_default().to_string();
            let serving = message == "serving";
            if serving {
                assert_eq!(event["policies"], "manifests/policies", "{line}");
            }
            messages.push(message);
            if serving {
                break;
            }
        }
        assert_eq!(messages.first().map(String::as_str), Some("the filter module does not exist here; Envoys that cannot load it will reject every config"), "{messages:?}");
        let sent =
            Command::new("kill").args([signal, &child.id().to_string()]).status().expect("kill");
        assert!(sent.success());
        let rest: Vec<String> = lines.map(|l| l.expect("line")).collect();
        let status = child.wait().expect("wait");
        assert!(status.success(), "{signal}: exit {status}; log: {rest:?}");
        assert!(
            rest.last().is_some_and(|l| l.contains("\"message\":\"stopped\"")),
            "{signal}: {rest:?}"
        );
    }
}

/// Nesting past `MAX_DEPTH` (64) is a located error for policies and the inventory, at any
/// depth: 20,000 levels used to overflow the loader's stack and abort the process.
#[test]
fn deep_nesting_is_a_located_error_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = |levels: usize| format!("{}a\n", "- ".repeat(levels));
    let path = dir.path().join("deep.yaml");
    let file = path.to_str().unwrap_or_default();
    for (levels, too_deep) in [(64, false), (65, true), (20_000, true)] {
        std::fs::write(&path, nested(levels)).expect("write");
        for args in [
            vec!["validate", "--policies", file],
            vec!["validate", "--policies", "manifests/policies", "--endpoints", file],
        ] {
            let out = l7gate(&args);
            let (_, stderr) = text(&out);
            assert_eq!(out.status.code(), Some(1), "{levels} levels, {args:?}: {stderr}");
            let says = stderr.contains("deep.yaml:1:129: mappings and lists nest deeper than 64");
            assert_eq!(says, too_deep, "{levels} levels, {args:?}: {stderr}");
            assert!(!stderr.contains("tabs"), "{stderr}");
        }
    }
}

/// Messages quote numbers as written and cut long values with a marker (a 1 MB regex made a
/// 1 MB error); syntax errors get the tabs hint only when tabs are the problem.
#[test]
fn messages_quote_numbers_as_written_and_cut_long_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("p.yaml");
    let policy = |port: &str, path: &str| {
        format!("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: p, namespace: default}}\nspec:\n  endpointSelector: {{}}\n  ingress:\n  - toPorts:\n    - ports: [{{port: {port}, protocol: TCP}}]\n      rules: {{http: [{{path: '{path}'}}]}}\n")
    };
    let run = |yaml: &str| {
        std::fs::write(&file, yaml).expect("write");
        let out = l7gate(&["validate", "--policies", file.to_str().unwrap_or_default()]);
        assert_eq!(out.status.code(), Some(1));
        text(&out).1
    };
    let stderr = run(&policy("8080.0", "/x"));
    assert!(stderr.contains("found the number 8080.0"), "{stderr}");
    let stderr = run(&policy("\"8080\"", &format!("({}", "a".repeat(1_000_000))));
    assert!(stderr.len() < 1_000, "{} bytes of error", stderr.len());
    assert!(stderr.contains("…\" (999901 more characters)"), "{stderr}");
    let stderr = run("a: [1, 2\n");
    assert!(stderr.contains("invalid YAML") && !stderr.contains("tabs"), "{stderr}");
    let stderr = run("a:\n\tb: c\n");
    assert!(stderr.contains("indent with spaces, never tabs"), "{stderr}");
}

/// An input file over the size limit (64 MiB) is refused before it is parsed, with the fix.
#[test]
fn an_oversized_input_file_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("huge.yaml");
    let line = "# padding padding padding padding padding padding padding padding padding\n";
    std::fs::write(&file, line.repeat(64 * 1024 * 1024 / line.len() + 1)).expect("write");
    let path = file.to_str().unwrap_or_default();
    for args in [
        vec!["validate", "--policies", path],
        vec!["validate", "--policies", "manifests/policies", "--endpoints", path],
    ] {
        let out = l7gate(&args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("huge.yaml:1:1: "), "{stderr}");
        assert!(stderr.contains("larger than 64 MiB") && stderr.contains("split it"), "{stderr}");
    }
}

/// The named limits of docs/limits.md fail with a located error naming the limit and the fix,
/// never a hang or an exhausted memory: YAML documents per file, alias expansion, regex program
/// size, endpoints per inventory, rules per endpoint direction. Each just under its limit passes.
#[test]
fn every_named_limit_is_a_located_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().unwrap_or_default().to_string()
    };
    let refused = |args: &[&str], says: &[&str]| {
        let out = l7gate(args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        for s in says {
            assert!(stderr.contains(s), "{args:?}: wanted {s:?} in {stderr}");
        }
    };
    let policy_head = |name: &str| {
        format!("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  endpointSelector: {{matchLabels: {{app: inventory-api}}}}\n")
    };

    // 100,000 documents are read (each an error of its own kind), 100,001 are refused at once.
    let docs = write("docs.yaml", &"---\n".repeat(100_001));
    refused(
        &["validate", "--policies", &docs],
        &["docs.yaml:100001:1: more than 100000 YAML documents"],
    );

    // A billion laughs in a label value.
    let mut bomb =
        String::from("metadata:\n  labels:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        bomb.push_str(&format!(
            "    a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    let bomb = write("bomb.yaml", &bomb);
    refused(
        &["validate", "--policies", &bomb],
        &["bomb.yaml:", "alias expansion", "write the values out"],
    );

    // A regex whose program would be a million states.
    let regex = write(
        "regex.yaml",
        &format!("{}  ingress:\n  - toPorts:\n    - ports: [{{port: \"8080\", protocol: TCP}}]\n      rules: {{http: [{{path: \"/(abc{{1000}}){{1000}}\"}}]}}\n", policy_head("re")),
    );
    refused(
        &["validate", "--policies", &regex],
        &["regex.yaml:9:29:", "size limit", "counted repetitions multiply"],
    );

    // Endpoints: the 10,001st is refused where it is listed.
    let endpoints = |n: usize| {
        let mut text = String::from("endpoints:\n");
        for i in 0..n {
            text.push_str(&format!(
                "  - {{name: e{i}, ips: [10.{}.{}.{}]}}\n",
                i / 65536,
                (i / 256) % 256,
                i % 256
            ));
        }
        text
    };
    let ok = write("ok-inventory.yaml", &endpoints(10_000));
    let out = l7gate(&["validate", "--policies", "manifests/policies", "--endpoints", &ok]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let many = write("inventory.yaml", &endpoints(10_001));
    refused(
        &["validate", "--policies", "manifests/policies", "--endpoints", &many],
        &["inventory.yaml:10002:5: endpoints[10000]: more than 10000 endpoints"],
    );

    // Rules: one policy with 20,001 ingress rules for inventory-api (plus the seed's).
    let mut big = policy_head("big");
    big.push_str("  ingress:\n");
    for i in 0..20_001 {
        big.push_str(&format!(
            "  - toPorts: [{{ports: [{{port: \"{}\", protocol: TCP}}]}}]\n",
            1_000 + i % 60_000
        ));
    }
    let big = write("big.yaml", &big);
    refused(
        &["validate", "--policies", &big, "--endpoints", "manifests/endpoints.yaml"],
        &[
            "big.yaml:1:1: endpoint default/inventory-api: ingress has",
            "more than the limit of 20000",
            "policy default/big gives 20001",
        ],
    );
}

/// Policies kept beside the manifests they protect: other objects are skipped with one note
/// each on stderr, and `trace` takes a node of the inventory as a peer, as its address would be.
#[test]
fn policies_beside_other_manifests_and_nodes_as_peers() {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(repo().join("manifests/policies")).expect("policies") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    std::fs::write(
        dir.path().join("app.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n---\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web}\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("empty.yaml"), "").expect("write");
    let policies = dir.path().to_str().unwrap_or_default();
    let out = l7gate(&["validate", "--policies", policies]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("3 policies"), "{stdout}");
    let notes: Vec<&str> = stderr.lines().filter(|l| l.starts_with("note: ")).collect();
    assert_eq!(notes.len(), 2, "{stderr}");
    assert!(
        notes[0].ends_with(
            "app.yaml:1:1: skipped Deployment shop/web (apps/v1): not a Cilium network policy"
        ),
        "{stderr}"
    );

    let (node, ip) = (read_inventory("node-1"), read_inventory("127.0.1.1"));
    assert_eq!(node["ingress"], ip["ingress"], "a node is traced as its address");
    assert_eq!(node["ingress"]["peer"], "reserved:remote-node", "{node}");
    let out = run_trace(&["--from", "node-9", "--to", "inventory-api", "--port", "8080"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains(", nor a node (node-1)"), "{stderr}");
}

/// Issue 11 §4: trace judges the path the filter sees once Envoy has handled it, and says so.
#[test]
fn trace_judges_the_path_envoy_hands_on() {
    const TO_INVENTORY: [&str; 6] =
        ["--from", "frontend", "--to", "inventory-api", "--port", "8080"];
    let get =
        |path: &str, extra: &[&str]| trace(&[&TO_INVENTORY[..], &["--path", path], extra].concat());
    let t = get("/api/inventory/../admin", &[]);
    assert_eq!(
        (t["verdict"].as_str(), t["envoy"]["path"].as_str()),
        (Some("deny"), Some("/api/admin"))
    );
    assert_eq!(t["envoy"]["action"], "forward");
    let t = get("//api/inventory/x", &[]);
    assert_eq!(
        (t["verdict"].as_str(), t["envoy"]["path"].as_str()),
        (Some("allow"), Some("/api/inventory/x"))
    );
    let t = get("/api/inventory%2Fx", &[]);
    assert_eq!(
        (t["envoy"]["action"].as_str(), t["envoy"]["status"].as_u64()),
        (Some("redirect"), Some(307))
    );
    let t = get("/api/inventory/caf\u{e9}", &[]);
    assert_eq!((t["verdict"].as_str(), t["envoy"]["status"].as_u64()), (Some("reject"), Some(400)));
    assert!(t.get("ingress").is_none(), "no policy judges what Envoy refuses: {t}");
    let t = get("/api/inventory/caf\u{e9}", &["--http2"]);
    assert_eq!(
        (t["verdict"].as_str(), t["envoy"]["path"].as_str()),
        (Some("allow"), Some("/api/inventory/caf%C3%A9"))
    );

    let out = run_trace(&[&TO_INVENTORY[..], &["--path", "/api/x/../inventory/1"]].concat());
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("path    /api/x/../inventory/1 -> /api/inventory/1 (normalised by Envoy)"),
        "{stdout}"
    );
    assert!(stdout.contains("GET /api/inventory/1 "), "{stdout}");
}

/// `l7gate test` with these arguments after the seed inputs (`--policies` may be overridden).
fn run_tests(policies: &str, extra: &[&str]) -> Output {
    let args = ["test", "--policies", policies, "--endpoints", "manifests/endpoints.yaml"];
    l7gate(&[&args[..], extra].concat())
}

/// The seed's policy tests pass as written; a policy loosened on purpose fails exactly the case
/// that guards it, with a table row, the details and a JUnit report; a bad test file is a located
/// error, and so is a set of files without a single case.
#[test]
fn policy_tests_pass_on_the_seed_and_catch_a_broken_policy() {
    let cases = std::fs::read_to_string(repo().join("manifests/tests/retail.yaml"))
        .expect("read the seed tests")
        .matches("\n  - name: ")
        .count();
    let out = run_tests("manifests/policies", &["manifests/tests"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "seed tests failed:\n{stdout}\n{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("pass ")).count(), cases, "{stdout}");
    assert!(stdout.contains(&format!("{cases} cases: {cases} passed, 0 failed")), "{stdout}");
    assert!(
        stdout.contains("default/inventory-api-l7 spec.ingress[0].toPorts[0].rules.http[0]"),
        "the deciding HTTP rule is shown: {stdout}"
    );

    // Loosen the inventory policy to let DELETE through, keeping the tests beside the policies.
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(repo().join("manifests/policies")).expect("policies") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let text = text.replace("method: GET", "method: \"GET|DELETE\"");
        std::fs::write(dir.path().join(path.file_name().expect("name")), text).expect("write");
    }
    std::fs::copy(repo().join("manifests/tests/retail.yaml"), dir.path().join("tests.yaml"))
        .expect("copy the tests");
    let junit = dir.path().join("junit.xml");
    let policies = dir.path().to_str().expect("utf-8 path");
    let out = run_tests(policies, &[policies, "--junit", junit.to_str().expect("utf-8 path")]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "a failed case exits 1:\n{stdout}\n{stderr}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert_eq!(failed.len(), 2, "one row and one detail block: {stdout}");
    assert!(failed[0].contains("the frontend cannot delete inventory"), "{stdout}");
    assert!(stdout.contains("expected deny, got allow"), "{stdout}");
    assert!(stdout.contains("DELETE /api/inventory/items/42"), "the request is shown: {stdout}");
    assert!(stderr.contains(&format!("1 of {cases} policy test cases failed")), "{stderr}");
    assert!(stderr.contains("policy tests, run by `l7gate test`"), "the loader notes the tests");
    let report = std::fs::read_to_string(&junit).expect("the JUnit report is written");
    assert!(report.contains(&format!("tests=\"{cases}\" failures=\"1\"")), "{report}");
    assert_eq!(report.matches("<failure ").count(), 1, "{report}");
    assert!(report.contains("-&gt; inventory-api"), "XML is escaped: {report}");

    // A bad file: every error located, nothing run.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: l7gate.io/v1alpha1\nkind: PolicyTest\nspec:\n  cases:\n  - name: x\n    \
         from: frontend\n    to: inventory-api\n    port: 0\n    expect: allowed\n",
    )
    .expect("write");
    let out = run_tests("manifests/policies", &[bad.to_str().expect("utf-8 path")]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.is_empty(), "nothing runs: {stdout}");
    assert!(
        stderr.contains("bad.yaml:8:11: spec.cases[0].port: expected a port number"),
        "{stderr}"
    );
    assert!(stderr.contains("bad.yaml:9:13: spec.cases[0].expect: unknown verdict \"allowed\""));
    let out = run_tests("manifests/policies", &["manifests/policies"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("no test case here"), "{}", text(&out).1);
}

/// docs/rollout.md's commands, every `sh` block in order, run by bash as written (with this
/// build's `l7gate` first on PATH) in a copy of the repository's manifests and docs.
#[test]
fn the_rollout_walkthrough_runs_as_written() {
    let doc =
        std::fs::read_to_string(repo().join("docs/rollout.md")).expect("read the walkthrough");
    let mut script = String::from("set -euo pipefail\n");
    let mut in_block = false;
    for line in doc.lines() {
        match (in_block, line) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, command) => script.push_str(&format!("{command}\n")),
            _ => {}
        }
    }
    assert!(script.matches("l7gate ").count() >= 7, "the walkthrough lost its commands:\n{script}");
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = Command::new("cp").arg("-r").arg(repo().join("manifests")).arg(dir.path()).status();
    assert!(copy.expect("cp").success());
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_l7gate"));
    let path = format!(
        "{}:{}",
        bin.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("PATH", path)
        .current_dir(dir.path())
        .output()
        .expect("run bash");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "the walkthrough failed:\n{script}\n{stdout}\n{stderr}");
    assert!(stdout.contains("POST payment-gateway:8080/process-payment"), "observe: {stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "test: {stdout}");
    assert!(stdout.contains("verdict: DENY"), "trace of the held-back request: {stdout}");
    assert!(stderr.contains("from 20 flows the existing policies deny"), "the addition: {stderr}");
    let addition =
        std::fs::read_to_string(dir.path().join("suggested-addition.yaml")).expect("addition");
    assert!(
        addition.contains("path: '/api/inventory/report'")
            && addition.contains("app: reporting-job"),
        "{addition}"
    );
    assert!(
        stdout
            .contains("+ default/inventory-api-suggested spec.ingress[1].toPorts[0]: allow peers"),
        "diff shows the added rules: {stdout}"
    );

    // Broken on purpose (the search rule made POST-only), the suggested tests catch exactly
    // the requests it served.
    let policies = dir.path().join("suggested/policies.yaml");
    let yaml = std::fs::read_to_string(&policies).expect("suggested policies");
    let search = "- method: GET\n          path: '/api/inventory/search(\\?.*)?'";
    assert!(yaml.contains(search), "{yaml}");
    std::fs::write(&policies, yaml.replace(search, &search.replace("GET", "POST"))).expect("write");
    let out = Command::new(&bin)
        .args(["test", "--policies", "suggested", "--endpoints", "manifests/endpoints.yaml"])
        .arg("suggested/tests.yaml")
        .current_dir(dir.path())
        .output()
        .expect("run l7gate test");
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL    ")).collect();
    let searches = std::fs::read_to_string(dir.path().join("suggested/tests.yaml"))
        .expect("tests")
        .matches("path: '/api/inventory/search?q=")
        .count();
    assert!(searches > 0);
    assert_eq!(failed.len(), searches, "{stdout}");
    assert!(failed.iter().all(|l| l.contains("/api/inventory/search?q=")), "{stdout}");
}
