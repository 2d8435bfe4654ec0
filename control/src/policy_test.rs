//! Policy tests (`l7gate test`): YAML objects of kind `PolicyTest` listing requests and the
//! verdict each must get (optionally the deciding policy, rule and reason), decoded with
//! positions and judged by `trace` (the filter's engine, after Envoy's own path handling).
//! Tests may live in their own files or beside the policies: the policy loader skips them with
//! a note, and this loader skips the policies.

use std::path::{Path, PathBuf};

use l7gate_filter::config::Protocol;

use crate::compile::Cluster;
use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::engines::Engines;
use crate::envoy_path::Version;
use crate::trace::{trace_with, Query, Side, Trace};
use crate::yaml::{
    data, file_error, peek_str, scalar_text, span_of, yaml_files, Decoder, Fields, Node, Shape,
};

/// The API version and kind of a policy-test object.
pub const API_VERSION: &str = "l7gate.io/v1alpha1";
pub const KIND: &str = "PolicyTest";

/// The verdicts a case may expect, as `trace` spells them.
pub const VERDICTS: [&str; 4] = ["allow", "deny", "audit", "reject"];

const TOP: Shape = Shape::plain("a PolicyTest", &["apiVersion", "kind", "metadata", "spec"]);
const SPEC: Shape = Shape::plain("a PolicyTest spec", &["cases"]);
const CASE: Shape = Shape::plain(
    "a test case",
    &[
        "name", "from", "to", "port", "protocol", "method", "path", "host", "headers", "sni",
        "http2", "at", "expect",
    ],
);
const EXPECT: Shape = Shape::plain("an expectation", &["verdict", "policy", "rule", "reason"]);

/// The test cases read from a set of files.
#[derive(Debug, Clone, Default)]
pub struct Suite {
    pub cases: Vec<Case>,
    /// Other objects of the files (policies kept beside the tests), skipped.
    pub skipped: usize,
}

/// One request and what must happen to it.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    /// The `PolicyTest` object it belongs to (`metadata.name`, else the file's stem).
    pub group: String,
    pub file: PathBuf,
    pub span: Span,
    pub query: Query,
    /// Judge only this sidecar (`ingress`: the destination's, `egress`: the source's), as a
    /// recorded flow was; `None`: both, as a request meets them.
    pub at: Option<&'static str>,
    pub expect: Expect,
}

impl Case {
    /// `file:line`, for reports.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.span.line)
    }
}

/// What a case expects: the overall verdict, and optionally what decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub verdict: &'static str,
    /// The deciding policy, as trace names it: `namespace/name` (CNP) or `name` (CCNP).
    pub policy: Option<String>,
    /// The deciding rule, `spec.ingress[0].toPorts[0]` or with `.rules.http[N]` appended.
    pub rule: Option<String>,
    /// The reason code, e.g. `allowed-l7`, `default-deny`, `denied-l7-no-rule-matched`.
    pub reason: Option<String>,
}

/// A case's result: the trace (or why there is none) and every way it missed the expectation.
#[derive(Debug, Clone)]
pub struct Outcome<'s> {
    pub case: &'s Case,
    pub trace: Result<Trace, String>,
    /// Empty when the case passed.
    pub failures: Vec<String>,
}

impl Outcome<'_> {
    pub fn passed(&self) -> bool {
        self.trace.is_ok() && self.failures.is_empty()
    }
}

/// The verdict a case is judged by, and the sides that gave it.
pub struct Judgement<'t> {
    pub verdict: &'static str,
    /// `(direction, side)`.
    pub sides: Vec<(&'static str, &'t Side)>,
}

/// The trace's overall verdict from both sides, or with `at` that sidecar's alone (a reject
/// stays a reject), and the sides that gave it.
pub fn judged<'t>(t: &'t Trace, at: Option<&str>) -> Result<Judgement<'t>, String> {
    let sides = [("egress", &t.egress), ("ingress", &t.ingress)]
        .into_iter()
        .filter(|(d, _)| at.is_none_or(|a| a == *d))
        .filter_map(|(d, s)| s.as_ref().map(|s| (d, s)));
    let sides: Vec<(&'static str, &Side)> = sides.collect();
    let verdict = match (at, sides.as_slice()) {
        (None, _) => t.verdict,
        (Some(_), _) if t.verdict == "reject" => "reject",
        (Some(_), [(_, side)]) => side.verdict,
        (Some(at), _) => {
            let whose = if at == "ingress" { "destination" } else { "source" };
            return Err(format!("at: {at}, but the {whose} is not an endpoint with a sidecar"));
        }
    };
    let sides = sides.into_iter().filter(|(_, s)| s.verdict == verdict).collect();
    Ok(Judgement { verdict, sides })
}

/// Reads the `PolicyTest` objects of files and directories (their `*.yaml`/`*.yml` files);
/// every error of every file at once, and no case unless all are valid. Finding no case is an
/// error (a test run that checks nothing must not pass).
pub fn load(paths: &[PathBuf]) -> Result<Suite, Diagnostics> {
    let mut suite = Suite::default();
    let mut errors = Vec::new();
    for path in paths {
        let files = match yaml_files(path, "the policy tests") {
            Ok(files) => files,
            Err(d) => {
                errors.push(d);
                continue;
            }
        };
        for file in files {
            match crate::yaml::read_input(&file) {
                Ok(text) => errors.extend(parse_into(&file, &text, &mut suite)),
                Err(e) => errors.push(file_error(&file, e)),
            }
        }
    }
    if errors.is_empty() && suite.cases.is_empty() {
        let at = paths.first().map_or_else(PathBuf::new, Clone::clone);
        errors.push(file_error(
            &at,
            format!(
                "no test case here: write objects of apiVersion {API_VERSION}, kind {KIND}, with \
                 cases under spec.cases"
            ),
        ));
    }
    errors.extend(duplicate_names(&suite.cases));
    if errors.is_empty() {
        Ok(suite)
    } else {
        Err(Diagnostics(errors).sorted())
    }
}

/// Decodes one file's text into `suite`, returning its errors.
pub fn parse_into(file: &Path, text: &str, suite: &mut Suite) -> Vec<Diagnostic> {
    let mut d = Decoder::new(file);
    let mut cases = Vec::new();
    let mut skipped = 0;
    d.each_document(text, |d, doc| {
        let Some(top) = d.mapping(doc, "", TOP.what) else { return };
        let (api, kind) = (peek_str(doc, &["apiVersion"]), peek_str(doc, &["kind"]));
        let ours = kind == Some(KIND) || api.is_some_and(|a| a.starts_with("l7gate.io/"));
        if !ours && api.is_some() && kind.is_some() {
            skipped += 1;
            return;
        }
        if (api, kind) != (Some(API_VERSION), Some(KIND)) {
            let message =
                format!("expected a policy test: write apiVersion: {API_VERSION} and kind: {KIND}");
            return d.error(doc, "", message);
        }
        d.check_fields(&top, &TOP);
        let group = peek_str(doc, &["metadata", "name"]).map_or_else(
            || file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            str::to_string,
        );
        let Some(spec) = top.get("spec") else {
            return d.error(
                doc,
                "spec",
                "missing required field spec: add spec.cases, a list of cases",
            );
        };
        let Some(spec) = d.fields(spec, "spec", &SPEC) else { return };
        let Some(list) = spec.get("cases") else {
            return d.error(
                spec.node,
                "spec.cases",
                "missing required field cases: list the requests to check",
            );
        };
        let decoded = d.list(list, "spec.cases", |d, node, path| d.case(node, path, &group));
        cases.extend(decoded.unwrap_or_default());
    });
    if d.errors.is_empty() {
        suite.cases.extend(cases);
        suite.skipped += skipped;
    }
    d.errors
}

impl Decoder<'_> {
    fn case(&mut self, node: &Node, path: &str, group: &str) -> Option<Case> {
        let f = self.fields(node, path, &CASE)?;
        let errors_before = self.errors.len();
        let name = self.required_string(&f, "name", "add name: what the case checks, in words");
        let from = self.required_string(&f, "from", "add from: an endpoint, node or address");
        let to = self.required_string(&f, "to", "add to: an endpoint, node, address or DNS name");
        let port = match f.get("port") {
            Some(n) => self.port(n, &f.path("port")),
            None => {
                self.error(node, &f.path("port"), "missing required field port: add port: 8080");
                None
            }
        };
        let protocol = f.get("protocol").and_then(|n| self.protocol(n, &f.path("protocol")));
        let optional =
            |d: &mut Self, name: &str| f.get(name).and_then(|n| d.string(n, &f.path(name)));
        let (method, path_, host, sni) = (
            optional(self, "method"),
            optional(self, "path"),
            optional(self, "host"),
            optional(self, "sni"),
        );
        let headers: Vec<(String, String)> = f
            .get("headers")
            .and_then(|n| self.string_map(n, &f.path("headers")))
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let at = f.get("at").and_then(|n| {
            let word = self.string(n, &f.path("at"))?;
            let found = ["ingress", "egress"].into_iter().find(|d| *d == word);
            if found.is_none() {
                let message = format!("unknown side {word:?}: write ingress or egress");
                self.error(n, &f.path("at"), message);
            }
            found
        });
        let http2 = f.get("http2").and_then(|n| self.boolean(n, &f.path("http2"))).unwrap_or(false);
        if sni.is_some() {
            let http: Vec<&str> = ["method", "path", "host", "headers", "http2"]
                .into_iter()
                .filter(|n| f.get(n).is_some())
                .collect();
            if !http.is_empty() {
                let message = format!(
                    "a case with sni is a TLS connection, and the filter sees no HTTP request in \
                     it: remove {} or remove sni",
                    http.join(", ")
                );
                self.error(node, path, message);
            }
        }
        if protocol.is_some_and(|p| p != Protocol::Tcp) && (method.is_some() || path_.is_some()) {
            self.error(node, path, "HTTP needs protocol TCP: remove method and path, or protocol");
        }
        let expect = match f.get("expect") {
            Some(n) => self.expect(n, &f.path("expect")),
            None => {
                let message = format!(
                    "missing required field expect: add expect: allow (or {})",
                    VERDICTS[1..].join(", ")
                );
                self.error(node, &f.path("expect"), message);
                None
            }
        };
        if self.errors.len() != errors_before {
            return None;
        }
        Some(Case {
            name: name?,
            group: group.to_string(),
            file: self.file.to_path_buf(),
            span: span_of(node),
            query: Query {
                from: from?,
                to: to?,
                port: port?,
                protocol,
                method,
                path: path_,
                host,
                headers,
                sni,
                version: if http2 { Version::Http2 } else { Version::Http1 },
            },
            at,
            expect: expect?,
        })
    }

    /// A port, written as a number or a string of digits (as Cilium's `port: "80"`).
    fn port(&mut self, node: &Node, path: &str) -> Option<u16> {
        let text = match data(node) {
            saphyr::YamlDataOwned::Value(saphyr::ScalarOwned::String(s)) => s.clone(),
            _ => scalar_text(node).unwrap_or_default(),
        };
        let port = text.parse::<u16>().ok().filter(|&p| p != 0);
        if port.is_none() {
            self.error(node, path, "expected a port number from 1 to 65535");
        }
        port
    }

    fn protocol(&mut self, node: &Node, path: &str) -> Option<Protocol> {
        let p = match self.string(node, path)?.as_str() {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            other => {
                self.error(
                    node,
                    path,
                    format!("unknown protocol {other:?}: write TCP, UDP or SCTP"),
                );
                return None;
            }
        };
        Some(p)
    }

    /// `expect: deny`, or `expect: {verdict: deny, policy: ..., rule: ..., reason: ...}`.
    fn expect(&mut self, node: &Node, path: &str) -> Option<Expect> {
        if !matches!(data(node), saphyr::YamlDataOwned::Mapping(_)) {
            let verdict = self.verdict(node, path)?;
            return Some(Expect { verdict, policy: None, rule: None, reason: None });
        }
        let f: Fields = self.fields(node, path, &EXPECT)?;
        let verdict = match f.get("verdict") {
            Some(n) => self.verdict(n, &f.path("verdict")),
            None => {
                self.error(
                    node,
                    &f.path("verdict"),
                    "missing required field verdict: add verdict: allow",
                );
                None
            }
        };
        let optional =
            |d: &mut Self, name: &str| f.get(name).and_then(|n| d.string(n, &f.path(name)));
        let (policy, rule, reason) =
            (optional(self, "policy"), optional(self, "rule"), optional(self, "reason"));
        let verdict = verdict?;
        if verdict == "reject" && (policy.is_some() || rule.is_some() || reason.is_some()) {
            let message = "Envoy answers a rejected request itself, before any policy: remove \
                           policy, rule and reason";
            self.error(node, path, message);
            return None;
        }
        Some(Expect { verdict, policy, rule, reason })
    }

    fn verdict(&mut self, node: &Node, path: &str) -> Option<&'static str> {
        let word = self.string(node, path)?;
        let found = VERDICTS.into_iter().find(|v| *v == word);
        if found.is_none() {
            let message =
                format!("unknown verdict {word:?}: expect one of {}", VERDICTS.join(", "));
            self.error(node, path, message);
        }
        found
    }
}

/// An error for each case whose group and name were used before (reports name cases).
fn duplicate_names(cases: &[Case]) -> Vec<Diagnostic> {
    let mut seen = std::collections::HashMap::new();
    let mut errors = Vec::new();
    for c in cases {
        if let Some(first) = seen.insert((&c.group, &c.name), c) {
            errors.push(Diagnostic::new(
                &c.file,
                c.span,
                "name",
                format!(
                    "test case {:?} of {:?} is already defined at {}: give each case its own name",
                    c.name,
                    c.group,
                    first.location()
                ),
            ));
        }
    }
    errors
}

/// Runs every case through `trace` on `cluster`, engines compiled once per endpoint.
pub fn run<'s>(cluster: &Cluster, suite: &'s Suite) -> Vec<Outcome<'s>> {
    let mut engines = Engines::new(cluster);
    suite
        .cases
        .iter()
        .map(|case| {
            let trace = trace_with(&mut engines, &case.query);
            let failures =
                trace.as_ref().map(|t| judge(&case.expect, t, case.at)).unwrap_or_default();
            Outcome { case, trace, failures }
        })
        .collect()
}

/// How a trace misses an expectation (judged on both sides, or `at` one); empty if it meets it.
pub fn judge(expect: &Expect, t: &Trace, at: Option<&str>) -> Vec<String> {
    let Judgement { verdict, sides } = match judged(t, at) {
        Ok(j) => j,
        Err(e) => return vec![e],
    };
    if verdict != expect.verdict {
        return vec![format!("expected {}, got {verdict}", expect.verdict)];
    }
    let meets = |(_, s): &(&str, &Side)| {
        expect.policy.as_ref().is_none_or(|p| s.policy.as_ref() == Some(p))
            && expect.rule.as_ref().is_none_or(|r| rule_is(s, r))
            && expect.reason.as_ref().is_none_or(|r| s.reason == r)
    };
    let decided = expect.policy.is_none() && expect.rule.is_none() && expect.reason.is_none();
    if decided || sides.iter().any(meets) {
        return Vec::new();
    }
    let wanted: Vec<String> =
        [("policy", &expect.policy), ("rule", &expect.rule), ("reason", &expect.reason)]
            .into_iter()
            .filter_map(|(field, v)| v.as_ref().map(|v| format!("{field} {v}")))
            .collect();
    vec![format!(
        "expected {} by {}, but no side that gave it was decided so",
        expect.verdict,
        wanted.join(", ")
    )]
}

/// Whether `rule` names the side's deciding rule or an element that holds it: the rule path with
/// its deciding HTTP rule (`spec.ingress[0].toPorts[0].rules.http[1]`) is matched by itself and
/// by each of its prefixes that ends an element (`spec.ingress[0]`).
fn rule_is(s: &Side, rule: &str) -> bool {
    let Some(own) = &s.rule else { return false };
    let full = match s.http_rule {
        Some(n) => format!("{own}.rules.http[{n}]"),
        None => own.clone(),
    };
    full.strip_prefix(rule).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(cases: &str) -> Vec<(String, bool, Vec<String>)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cluster =
            crate::load(&root.join("manifests/policies"), &root.join("manifests/endpoints.yaml"))
                .unwrap_or_else(|e| panic!("{e}"))
                .cluster;
        let text = format!("apiVersion: {API_VERSION}\nkind: {KIND}\nspec:\n  cases:\n{cases}",);
        let mut suite = Suite::default();
        let errors = parse_into(Path::new("t.yaml"), &text, &mut suite);
        assert!(errors.is_empty(), "{errors:?}");
        run(&cluster, &suite)
            .into_iter()
            .map(|o| (o.case.name.clone(), o.passed(), o.failures))
            .collect()
    }

    const READ: &str = "from: frontend, to: inventory-api, port: 8080, path: /api/inventory/1";

    #[test]
    fn the_deciding_rule_is_matched_by_whole_elements_only() {
        let case =
            |name: &str, expect: &str| format!("  - {{name: {name}, {READ}, expect: {expect}}}\n");
        let cases: String = [
            ("http", "{verdict: allow, rule: 'spec.ingress[0].toPorts[0].rules.http[0]'}"),
            ("port", "{verdict: allow, rule: 'spec.ingress[0].toPorts[0]'}"),
            ("element", "{verdict: allow, rule: 'spec.ingress[0]'}"),
            ("other-http", "{verdict: allow, rule: 'spec.ingress[0].toPorts[0].rules.http[1]'}"),
            ("half-a-name", "{verdict: allow, rule: 'spec.ingress[0].toPorts[0].rules.ht'}"),
            ("egress-rule", "{verdict: allow, rule: 'spec.egress[0]', policy: egress-allowlist}"),
            (
                "mixed-sides",
                "{verdict: allow, rule: 'spec.egress[0]', policy: default/inventory-api-l7}",
            ),
            ("wrong-policy", "{verdict: allow, policy: inventory-api-l7}"),
            (
                "wrong-reason",
                "{verdict: allow, reason: allowed-l3-l4, policy: default/inventory-api-l7}",
            ),
            ("wrong-verdict", "deny"),
        ]
        .iter()
        .map(|(n, e)| case(n, e))
        .collect();
        let got: Vec<(String, bool)> =
            outcomes(&cases).into_iter().map(|(n, passed, _)| (n, passed)).collect();
        let want = [
            ("http", true),
            ("port", true),
            ("element", true),
            ("other-http", false),
            ("half-a-name", false),
            ("egress-rule", true),
            // policy and rule must hold on the same side.
            ("mixed-sides", false),
            ("wrong-policy", false),
            ("wrong-reason", false),
            ("wrong-verdict", false),
        ]
        .map(|(n, p)| (n.to_string(), p));
        assert_eq!(got, want);
    }

    #[test]
    fn a_failure_says_what_was_expected() {
        let got = outcomes(&format!(
            "  - {{name: a, {READ}, expect: deny}}\n  - {{name: b, {READ}, expect: {{verdict: allow, reason: default-deny}}}}\n"
        ));
        assert_eq!(got[0].2, ["expected deny, got allow"]);
        assert_eq!(
            got[1].2,
            ["expected allow by reason default-deny, but no side that gave it was decided so"]
        );
    }
}
