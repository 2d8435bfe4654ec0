//! Parser and validator tests: accepted documents, located errors, rejections (spec §1–§7).

use super::*;
use crate::cilium::model::Port;
use std::fs;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policies")
}

fn errors(text: &str) -> Vec<String> {
    match parse_str(Path::new("t.yaml"), text) {
        Ok(loaded) => panic!("accepted: {loaded:#?}"),
        Err(d) => d.0.iter().map(ToString::to_string).collect(),
    }
}

/// A namespaced policy whose `spec` is the given flow mapping (on line 4).
fn spec_errors(spec: &str) -> Vec<String> {
    errors(&format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: p, namespace: shop}}\nspec: {spec}\n"
    ))
}

fn selector(pairs: &[(&str, &str)]) -> Selector {
    let requirements = pairs
        .iter()
        .map(|(k, v)| Requirement {
            key: k.to_string(),
            operator: Operator::In,
            values: vec![v.to_string()],
        })
        .collect();
    Selector { requirements }
}

fn tcp(port: u16) -> PortProtocol {
    PortProtocol { port: Port::Number(port), end_port: None, protocol: L4Protocol::Tcp }
}

#[test]
fn good_multi_document_file() {
    let file = fixtures().join("good/01-shop.yaml");
    let loaded = load_path(&file).unwrap_or_else(|e| panic!("{e}"));
    let [cnp, ccnp] = loaded.policies.as_slice() else { panic!("{:#?}", loaded.policies) };

    // spec §1.1: kinds, names, namespaces; annotations kept, labels/uid/status ignored.
    assert_eq!((cnp.kind, cnp.qualified_name()), (PolicyKind::Namespaced, "shop/inventory".into()));
    assert_eq!(cnp.annotations.get("owner").map(String::as_str), Some("team-inventory"));
    assert_eq!((cnp.file.as_path(), cnp.span), (file.as_path(), Span { line: 3, col: 1 }));
    assert_eq!((ccnp.kind, ccnp.namespace.as_deref()), (PolicyKind::Clusterwide, None));
    let paths: Vec<_> = ccnp.rules.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["specs[0]", "specs[1]"]);

    // spec §1.2 / §2.2: rule metadata; matchLabels then matchExpressions.
    let [rule] = cnp.rules.as_slice() else { panic!() };
    assert_eq!(rule.path, "spec");
    assert_eq!(rule.description.as_deref(), Some("Storefront reads the inventory API"));
    assert_eq!(rule.default_deny, DefaultDeny { ingress: Some(true), egress: Some(false) });
    assert_eq!(
        rule.labels,
        [RuleLabel { key: "team".into(), value: "inventory".into(), source: "k8s".into() }]
    );
    assert_eq!(rule.log.as_deref(), Some("inventory-ingress"));
    let mut expected = selector(&[("app", "inventory-api"), ("k8s:tier", "backend")]);
    expected.requirements.push(Requirement {
        key: "env".into(),
        operator: Operator::DoesNotExist,
        values: vec![],
    });
    assert_eq!(rule.endpoint_selector, expected);

    // spec §3.1 nil vs empty.
    let ing = &rule.ingress;
    assert_eq!(ing.len(), 8);
    assert_eq!((&ing[0].peer, ing[0].to_ports.len()), (&None, 0), "{{}}: no peer, no ports");
    assert_eq!(ing[0].path, "spec.ingress[0]");
    assert_eq!(ing[1].peer, None, "toPorts without L3 field: every identity");
    assert_eq!(ing[2].peer, Some(Peer::Endpoints(vec![Selector::default()])), "wildcard selector");
    assert_eq!(ing[3].peer, Some(Peer::Endpoints(vec![])), "empty list allows nothing");
    assert_eq!(ing[3].to_ports.len(), 1);
    assert_eq!(ing[4].peer, Some(Peer::Endpoints(vec![selector(&[("app", "storefront")])])));
    assert!(ing[4].to_ports.is_empty(), "toPorts: [] is L3-only");
    // spec §2.1: `$host` is reserved:host.
    assert_eq!(ing[5].peer, Some(Peer::Endpoints(vec![selector(&[("reserved:host", "")])])));
    assert_eq!(ing[5].to_ports.len(), 1);
    assert!(ing[5].to_ports[0].ports.is_empty(), "a port rule without ports");
    let net = validate::cidr("10.0.0.0/8").unwrap();
    assert_eq!(ing[6].peer, Some(Peer::Cidrs(vec![CidrRule { cidr: net, except: vec![] }])));
    assert_eq!(ing[7].peer, Some(Peer::Entities(vec![Entity::Cluster, Entity::RemoteNode])));

    // spec §3.8 and §5: ports (an integer port is the string), named ports, endPort, HTTP.
    let web = &ing[1].to_ports[0];
    assert_eq!(web.path, "spec.ingress[1].toPorts[0]");
    assert_eq!(web.ports, [tcp(8080)]);
    assert_eq!(web.dns, None);
    let http = web.http.as_deref().unwrap();
    assert_eq!(
        http,
        [HttpRule {
            method: Some("GET".into()),
            path: Some("/api/inventory/.*".into()),
            host: Some("inventory(:8080)?".into()),
            headers: vec!["X-Token".into(), "X-Tenant: blue".into()],
            header_matches: vec![
                HeaderMatch {
                    name: "X-Request-Source".into(),
                    value: Some("frontend".into()),
                    mismatch: None
                },
                HeaderMatch { name: "X-Trace".into(), value: None, mismatch: None },
            ],
        }]
    );
    assert_eq!(ing[3].to_ports[0].ports[0].protocol, L4Protocol::Any, "omitted protocol is ANY");
    let ranges = &ing[7].to_ports[0];
    let named = PortProtocol {
        port: Port::Named("http-alt".into()),
        end_port: None,
        protocol: L4Protocol::Tcp,
    };
    let range = PortProtocol { end_port: Some(9200), ..tcp(9100) };
    assert_eq!(ranges.ports, [named, tcp(9000), range]);
    assert_eq!(ranges.http, Some(vec![]), "http: [] is kept");

    // Deny rules and egress.
    let deny = &rule.ingress_deny[0];
    let inner = validate::cidr("10.1.0.0/16").unwrap();
    assert_eq!(deny.peer, Some(Peer::Cidrs(vec![CidrRule { cidr: net, except: vec![inner] }])));
    assert_eq!(deny.to_ports[0].ports, [tcp(22)]);
    let fqdns = vec![
        FqdnSelector::MatchName("api.example.com".into()),
        FqdnSelector::MatchPattern("*.example.com".into()),
    ];
    assert_eq!(rule.egress[0].peer, Some(Peer::Fqdns(fqdns)));
    assert_eq!(rule.egress_deny[0].peer, Some(Peer::Entities(vec![Entity::World])));

    // The CCNP: DNS rules, `ingress: []` next to egress.
    let dns = &ccnp.rules[0].egress[0].to_ports[0];
    assert_eq!(dns.dns, Some(vec![FqdnSelector::MatchPattern("*".into())]));
    assert!(ccnp.rules[1].ingress.is_empty());
    let v6 = validate::cidr("fd00::/64").unwrap();
    assert_eq!(
        ccnp.rules[1].egress[0].peer,
        Some(Peer::Cidrs(vec![CidrRule { cidr: v6, except: vec![] }]))
    );

    // spec §6.4: DNS rules are accepted with a warning.
    let warnings: Vec<_> = loaded.warnings.iter().map(|w| (w.span.line, w.path.as_str())).collect();
    assert_eq!(warnings, [(96, "specs[0].egress[0].toPorts[0].rules.dns")]);
    assert!(loaded.warnings[0].message.contains("does not filter DNS query names"));
}

#[test]
fn error_line_format() {
    let text = concat!(
        "apiVersion: cilium.io/v2\n",
        "kind: CiliumNetworkPolicy\n",
        "metadata:\n",
        "  name: inventory\n",
        "  namespace: shop\n",
        "spec:\n",
        "  endpointSelector: {}\n",
        "  ingress:\n",
        "  - toPorts:\n",
        "    - ports: [{port: \"8080\", protocol: TCP}]\n",
        "      rules:\n",
        "        http:\n",
        "        - method: GET\n",
        "          path: \"(\"\n", // line 14, value at column 17
    );
    let err = parse_str(Path::new("manifests/inventory.yaml"), text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "manifests/inventory.yaml:14:17: spec.ingress[0].toPorts[0].rules.http[0].path: invalid regex \
         \"(\": found open group without closing ')': write an RE2 pattern (it must match the whole \
         value; escape literal characters such as . ( ) with \\)\n1 error"
    );
}

#[test]
fn all_errors_of_a_file_at_once() {
    let file = fixtures().join("bad/several-errors.yaml");
    let err = load_path(&file).unwrap_err();
    let lines: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    let prefix = format!("{}:", file.display());
    let expected = [
        // spec §3.1: one L3 field per rule.
        "12:5: spec.ingress[0].fromEntities: combining fromEndpoints and fromEntities is not supported yet",
        // spec §3.8: L7 rules need protocol TCP.
        "15:9: spec.ingress[0].toPorts[0].ports[0]: L7 rules can only apply to TCP (not ANY)",
        // spec §5.2: regexes must compile.
        "19:17: spec.ingress[0].toPorts[0].rules.http[0].path: invalid regex \"/api/(v1\"",
        // spec §6.2: no wildcard in matchName.
        "21:27: spec.egress[0].toFQDNs[0].matchName: invalid matchName \"*.example.com\": Invalid characters",
        // YAML 1.1 booleans are strings.
        "23:14: spec.enableDefaultDeny.ingress: expected true or false, found the string \"yes\"",
        // spec §1.1: a CCNP has no namespace.
        "29:3: metadata.namespace: a CiliumClusterwideNetworkPolicy is cluster-scoped",
        // spec §1.2: a rule needs a non-empty section.
        "31:3: spec: rule must have at least one of ingress, ingressDeny, egress, egressDeny",
        "32:3: spec.egres: unknown field \"egres\" in a rule: valid fields are endpointSelector, ingress,",
    ];
    assert_eq!(lines.len(), expected.len(), "{err}");
    for (line, want) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(&format!("{prefix}{want}")),
            "{line}\n  does not start with\n{want}"
        );
    }
}

#[test]
fn rejections() {
    const ESEL: &str = "endpointSelector: {}";
    let ingress_port = |extra: &str| {
        format!("{{{ESEL}, ingress: [{{toPorts: [{{ports: [{{port: '80', protocol: TCP}}], {extra}}}]}}]}}")
    };
    let egress_port = |extra: &str| format!("{{{ESEL}, egress: [{{toPorts: [{{{extra}}}]}}]}}");
    let http = |rule: &str| ingress_port(&format!("rules: {{http: [{rule}]}}"));
    let ports = |list: &str| format!("{{{ESEL}, ingress: [{{toPorts: [{{ports: [{list}]}}]}}]}}");
    let ingress = |rule: &str| format!("{{{ESEL}, ingress: [{rule}]}}");
    let egress = |rule: &str| format!("{{{ESEL}, egress: [{rule}]}}");
    let sel = |s: &str| format!("{{endpointSelector: {s}, ingress: [{{}}]}}");
    let forty_one = vec!["{port: '80'}"; 41].join(", ");
    let i0 = "spec.ingress[0]";
    let p0 = "spec.ingress[0].toPorts[0]";
    let e0 = "spec.egress[0]";
    let cases: Vec<(String, String, &str)> = vec![
        // spec §1.2 / §7: unenforced fields, each with a message saying so.
        ("{nodeSelector: {}, ingress: [{}]}".into(), "spec.nodeSelector".into(), "nodeSelector is not enforced by l7gate"),
        (egress("{toGroups: [{aws: {securityGroupsIds: [sg-1]}}]}"), format!("{e0}.toGroups"), "toGroups is not enforced"),
        (ingress("{fromGroups: [{aws: {}}]}"), format!("{i0}.fromGroups"), "fromGroups is not enforced"),
        (ingress("{fromNodes: [{}]}"), format!("{i0}.fromNodes"), "fromNodes is not enforced"),
        (egress("{toNodes: [{}]}"), format!("{e0}.toNodes"), "toNodes is not enforced"),
        // spec §3.3: non-empty fromRequires/toRequires.
        (ingress("{fromRequires: [{matchLabels: {env: prod}}]}"), format!("{i0}.fromRequires"), "removed in Cilium 1.19"),
        (egress("{toRequires: [{}]}"), format!("{e0}.toRequires"), "removed in Cilium 1.19"),
        // spec §3.5, §3.7.
        (egress("{toServices: [{k8sService: {serviceName: db}, k8sServiceSelector: {selector: {}}}]}"), format!("{e0}.toServices[0]"), "exactly one of k8sService or k8sServiceSelector"),
        (egress("{toServices: [{}]}"), format!("{e0}.toServices[0]"), "exactly one of k8sService or k8sServiceSelector"),
        (egress("{toServices: [{k8sService: {namespace: shop}}]}"), format!("{e0}.toServices[0].k8sService.serviceName"), "name the Service"),
        (egress("{toServices: [{k8sServiceSelector: {namespace: shop}}]}"), format!("{e0}.toServices[0].k8sServiceSelector.selector"), "missing required field selector"),
        (egress("{toServices: [{k8sService: {serviceName: db}}], toEndpoints: [{}]}"), format!("{e0}.toServices"), "combining toEndpoints and toServices"),
        (ingress("{icmps: [{fields: [{family: IPv4, type: 8}]}]}"), format!("{i0}.icmps"), "icmps is not enforced"),
        (ingress("{icmps: [{fields: [{type: 8}]}], toPorts: [{ports: [{port: '80'}]}]}"), format!("{i0}.icmps"), "may only be present without ToPorts"),
        (ingress("{fromEntities: [cluster], authentication: {mode: required}}"), format!("{i0}.authentication.mode"), "mutual authentication"),
        // spec §3.8: toPorts extras.
        (ingress_port("listener: {envoyConfig: {kind: CiliumEnvoyConfig, name: x}, name: l}"), format!("{p0}.listener"), "listener is not enforced"),
        (ingress_port("terminatingTLS: {secret: {name: s}}"), format!("{p0}.terminatingTLS"), "TLS interception"),
        (ingress_port("originatingTLS: {secret: {name: s}}"), format!("{p0}.originatingTLS"), "TLS interception"),
        // spec §3.8: serverNames.
        (ingress_port("serverNames: [a.com], rules: {http: [{method: GET}]}"), format!("{p0}.serverNames"), "ServerNames are not allowed with L7 rules without TLS termination"),
        (ingress_port("serverNames: []"), format!("{p0}.serverNames"), "serverNames needs at least one name"),
        (ingress_port("serverNames: ['']"), format!("{p0}.serverNames[0]"), "empty server name is not allowed"),
        (ingress_port("serverNames: [a.com.]"), format!("{p0}.serverNames[0]"), "without the trailing dot"),
        (ingress_port("serverNames: ['api.*.com']"), format!("{p0}.serverNames[0]"), "a * anywhere else is not a serverNames pattern"),
        (ingress_port("serverNames: ['***.a.com']"), format!("{p0}.serverNames[0]"), "a * anywhere else"),
        (ingress_port("serverNames: ['*']"), format!("{p0}.serverNames[0]"), "a * anywhere else"),
        (ingress_port("rules: {kafka: [{topic: t}]}"), format!("{p0}.rules.kafka"), "kafka is not enforced"),
        (ingress_port("rules: {l7proto: envoy.x}"), format!("{p0}.rules.l7proto"), "l7proto is not enforced"),
        (ingress_port("rules: {l7: [{a: b}]}"), format!("{p0}.rules.l7"), "l7 is not enforced"),
        // spec §5.5: headerMatches.
        (http("{headerMatches: [{name: X, secret: {name: s}}]}"), format!("{p0}.rules.http[0].headerMatches[0].secret"), "secrets are not read"),
        (http("{headerMatches: [{name: X, value: a, mismatch: log}]}"), format!("{p0}.rules.http[0].headerMatches[0].mismatch"), "Invalid header action: log: write LOG, ADD, DELETE or REPLACE"),
        (http("{headerMatches: [{value: x}]}"), format!("{p0}.rules.http[0].headerMatches[0].name"), "Header name missing"),
        (http("{headers: [1]}"), format!("{p0}.rules.http[0].headers[0]"), "expected a string, found the number 1: quote it, \"1\""),
        // spec §5.2: method, path and host regexes compile.
        (http("{method: '(GET'}"), format!("{p0}.rules.http[0].method"), "invalid regex \"(GET\""),
        (http("{host: 'a[b'}"), format!("{p0}.rules.http[0].host"), "invalid regex \"a[b\""),
        // spec §3.4: CIDRs.
        (ingress("{fromCIDRSet: [{cidrGroupRef: grp}]}"), format!("{i0}.fromCIDRSet[0].cidrGroupRef"), "cidrGroupRef is not enforced"),
        (ingress("{fromCIDRSet: [{cidrGroupSelector: {}}]}"), format!("{i0}.fromCIDRSet[0].cidrGroupSelector"), "cidrGroupSelector is not enforced"),
        (ingress("{fromCIDR: [10.0.0.1]}"), format!("{i0}.fromCIDR[0]"), "unable to parse CIDR"),
        (ingress("{fromCIDRSet: [{cidr: 10.0.0.0/8, except: [192.168.0.0/16]}]}"), format!("{i0}.fromCIDRSet[0].except[0]"), "does not contain exclude CIDR prefix"),
        (ingress("{fromCIDRSet: [{cidr: 10.0.0.0/8, except: ['fd00::/64']}]}"), format!("{i0}.fromCIDRSet[0].except[0]"), "same IP family"),
        (ingress("{fromCIDRSet: [{except: [10.0.0.0/8]}]}"), format!("{i0}.fromCIDRSet[0].cidr"), "one of cidr, cidrGroupRef, or cidrGroupSelector is required"),
        // spec §2.4: entities.
        (egress("{toEntities: [world-ipv4]}"), format!("{e0}.toEntities[0]"), "not accepted by the CiliumNetworkPolicy CRD"),
        (egress("{toEntities: [internet]}"), format!("{e0}.toEntities[0]"), "unsupported entity: internet"),
        // spec §3.1: one L3 field per rule (fromCIDR and fromCIDRSet are two).
        (ingress("{fromEndpoints: [{}], fromEntities: [world]}"), format!("{i0}.fromEntities"), "combining fromEndpoints and fromEntities is not supported yet"),
        (ingress("{fromCIDR: [10.0.0.0/8], fromCIDRSet: [{cidr: 11.0.0.0/8}]}"), format!("{i0}.fromCIDRSet"), "combining fromCIDR and fromCIDRSet is not supported yet"),
        (egress("{toEndpoints: [{}], toFQDNs: [{matchName: a.com}]}"), format!("{e0}.toFQDNs"), "combining toEndpoints and toFQDNs is not supported yet"),
        // spec §3.8: ports.
        (ports(&forty_one), format!("{p0}.ports"), "too many ports, the max is 40"),
        (ports("{port: ''}"), format!("{p0}.ports[0].port"), "port must be specified"),
        (ports("{protocol: TCP}"), format!("{p0}.ports[0].port"), "port must be specified"),
        (ports("{port: 'http/80'}"), format!("{p0}.ports[0].port"), "unable to parse port \"http/80\""),
        (ports("{port: 'my--port'}"), format!("{p0}.ports[0].port"), "unable to parse port"),
        (ports("{port: 70000}"), format!("{p0}.ports[0].port"), "unable to parse port \"70000\""),
        (ports("{port: '080'}"), format!("{p0}.ports[0].port"), "octal"),
        (ports("{port: [80]}"), format!("{p0}.ports[0].port"), "expected a port number or name, found a list"),
        (ports("{port: '8080', endPort: 80}"), format!("{p0}.ports[0].endPort"), "endPort 80 is below port 8080"),
        (ports("{port: '80', endPort: '90'}"), format!("{p0}.ports[0].endPort"), "expected a number"),
        (ports("{port: '80', protocol: tcp}"), format!("{p0}.ports[0].protocol"), "protocols are upper-case: write TCP"),
        (ports("{port: '80', protocol: ICMP}"), format!("{p0}.ports[0].protocol"), "icmps"),
        // spec §3.8: L7 rules need TCP on every port, never port 0; one L7 kind.
        (format!("{{{ESEL}, ingress: [{{toPorts: [{{ports: [{{port: '80'}}], rules: {{http: [{{}}]}}}}]}}]}}"), format!("{p0}.ports[0]"), "L7 rules can only apply to TCP (not ANY)"),
        (format!("{{{ESEL}, ingress: [{{toPorts: [{{ports: [{{port: '80', protocol: TCP}}, {{port: '81', protocol: UDP}}], rules: {{http: [{{}}]}}}}]}}]}}"), format!("{p0}.ports[1]"), "(not UDP)"),
        (format!("{{{ESEL}, ingress: [{{toPorts: [{{ports: [{{port: '0', protocol: TCP}}], rules: {{http: [{{}}]}}}}]}}]}}"), format!("{p0}.ports[0]"), "L7 rules can not be used when a port is 0"),
        (egress_port("ports: [{port: '53', protocol: TCP}], rules: {http: [{}], dns: [{matchPattern: '*'}]}"), format!("{e0}.toPorts[0].rules.dns"), "multiple L7 protocol rule types"),
        // spec §6.3: DNS rules: egress only, explicit ports, no ranges.
        (ingress_port("rules: {dns: [{matchPattern: '*'}]}"), format!("{p0}.rules.dns"), "L7 protocol DNS is not supported on ingress yet"),
        (egress_port("rules: {dns: [{matchPattern: '*'}]}"), format!("{e0}.toPorts[0].ports"), "port 53 must be specified for DNS rules"),
        (egress_port("ports: [{port: '53', endPort: 60, protocol: UDP}], rules: {dns: [{matchPattern: '*'}]}"), format!("{e0}.toPorts[0].ports[0]"), "DNS rules do not support port ranges"),
        // spec §3.8: deny rules take ports only; egressDeny has no toFQDNs.
        (format!("{{{ESEL}, ingressDeny: [{{toPorts: [{{ports: [{{port: '80', protocol: TCP}}], rules: {{http: [{{}}]}}}}]}}]}}"), "spec.ingressDeny[0].toPorts[0].rules".into(), "deny rules match ports only"),
        (format!("{{{ESEL}, egressDeny: [{{toPorts: [{{ports: [{{port: '443', protocol: TCP}}], serverNames: [a.com]}}]}}]}}"), "spec.egressDeny[0].toPorts[0].serverNames".into(), "deny rules match ports only"),
        (format!("{{{ESEL}, egressDeny: [{{toFQDNs: [{{matchName: a.com}}]}}]}}"), "spec.egressDeny[0].toFQDNs".into(), "toFQDNs is not allowed in egressDeny"),
        // spec §3.1: toFQDNs is egress only.
        (ingress("{toFQDNs: [{matchName: a.com}]}"), format!("{i0}.toFQDNs"), "unknown field \"toFQDNs\" in an ingress rule: valid fields are fromEndpoints, fromCIDR"),
        // spec §6.2: FQDN selectors.
        (egress("{toFQDNs: [{matchName: a.com, matchPattern: '*.a.com'}]}"), format!("{e0}.toFQDNs[0]"), "only one of MatchName or MatchPattern is allowed"),
        (egress("{toFQDNs: [{}]}"), format!("{e0}.toFQDNs[0]"), "needs matchName or matchPattern"),
        (egress("{toFQDNs: [{matchPattern: 'a/b.com'}]}"), format!("{e0}.toFQDNs[0].matchPattern"), "Invalid characters"),
        // spec §2.2: label selectors.
        (sel("{matchLabels: {'-app': x}}"), "spec.endpointSelector.matchLabels.-app".into(), "invalid label key \"-app\""),
        (sel("{matchLabels: {app: 'a b'}}"), "spec.endpointSelector.matchLabels.app".into(), "invalid label value \"a b\""),
        (sel("{matchLabels: {app: 1}}"), "spec.endpointSelector.matchLabels.app".into(), "quote it, \"1\""),
        (sel("{matchExpressions: [{key: app, operator: In}]}"), "spec.endpointSelector.matchExpressions[0].values".into(), "needs a non-empty values list"),
        (sel("{matchExpressions: [{key: app, operator: Exists, values: [a]}]}"), "spec.endpointSelector.matchExpressions[0].values".into(), "must not have values"),
        (sel("{matchExpressions: [{key: app, operator: in, values: [a]}]}"), "spec.endpointSelector.matchExpressions[0].operator".into(), "invalid operator \"in\""),
        (ingress("{fromEndpoints: [{matchLabels: {app: frontend}, matchFields: {}}]}"), format!("{i0}.fromEndpoints[0].matchFields"), "valid fields are matchLabels, matchExpressions"),
        // spec §1.2: rule shape.
        (format!("{{{ESEL}}}"), "spec".into(), "rule must have at least one of ingress"),
        (format!("{{{ESEL}, ingress: []}}"), "spec".into(), "rule must have at least one of ingress"),
        ("{ingress: [{}]}".into(), "spec.endpointSelector".into(), "missing endpointSelector"),
        (format!("{{{ESEL}, ingres: [{{}}]}}"), "spec.ingres".into(), "unknown field \"ingres\" in a rule: valid fields are endpointSelector, ingress, ingressDeny"),
        (format!("{{{ESEL}, ingress: [{{}}], enableDefaultDeny: {{egress: on}}}}"), "spec.enableDefaultDeny.egress".into(), "\"on\": YAML 1.1 spellings"),
        (format!("{{{ESEL}, ingress: [{{}}], log: {{value: {}}}}}", "x".repeat(33)), "spec.log.value".into(), "longer than 32 characters"),
        (format!("{{{ESEL}, ingress: [{{}}], labels: [{{value: x}}]}}"), "spec.labels[0].key".into(), "missing required field key"),
        (format!("{{{ESEL}, ingress: [{{}}], description: [a]}}"), "spec.description".into(), "expected a string, found a list"),
        (format!("{{{ESEL}, ingress: {{}}}}"), "spec.ingress".into(), "expected a list, found a mapping"),
        (ingress("{fromEntities: 5}"), format!("{i0}.fromEntities"), "expected a list, found the number 5"),
    ];
    let mut failures = Vec::new();
    for (spec, path, message) in &cases {
        let errors = spec_errors(spec);
        let needle = format!(": {path}: ");
        if !errors.iter().any(|e| e.contains(&needle) && e.contains(message)) {
            failures
                .push(format!("spec: {spec}\n  want {path}: ...{message}...\n  got {errors:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn document_errors() {
    const META: &str = "metadata: {name: p, namespace: shop}\n";
    const SPEC: &str = "spec: {endpointSelector: {}, ingress: [{}]}\n";
    let cnp = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n";
    let cases: Vec<(String, &str)> = vec![
        // spec §1.1: kinds and apiVersion.
        (format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n{META}{SPEC}"), "t.yaml:2:7: kind: unsupported kind \"NetworkPolicy\""),
        (format!("apiVersion: cilium.io/v2alpha1\nkind: CiliumNetworkPolicy\n{META}{SPEC}"), "t.yaml:1:13: apiVersion: unsupported apiVersion \"cilium.io/v2alpha1\""),
        (format!("kind: CiliumNetworkPolicy\n{META}{SPEC}"), "t.yaml:1:1: apiVersion: missing required field apiVersion"),
        // spec §1.1: metadata.name is mandatory.
        (format!("{cnp}metadata: {{namespace: shop}}\n{SPEC}"), "t.yaml:3:11: metadata.name: missing required field name"),
        (format!("{cnp}{SPEC}"), "t.yaml:1:1: metadata.name: must have name"),
        (format!("{cnp}metadata: {{name: p, finalizers: [x]}}\n{SPEC}"), "t.yaml:3:21: metadata.finalizers: unknown field \"finalizers\" in metadata"),
        // spec §1.1: neither spec nor specs is an empty policy.
        (format!("{cnp}{META}"), "t.yaml:1:1: empty policy"),
        (format!("{cnp}{META}specs: []\n"), "t.yaml:1:1: empty policy"),
        (format!("{cnp}{META}{SPEC}data: {{}}\n"), "t.yaml:5:1: data: unknown field \"data\" in a policy document"),
        // Duplicate keys are located.
        (format!("{cnp}{META}{SPEC}{SPEC}"), "t.yaml:5:1: invalid YAML: duplicated key in mapping: remove or rename one of the two entries"),
        // One (kind, namespace, name) per load, unless the copy is identical.
        (format!("{cnp}{META}{SPEC}---\n{cnp}{META}spec: {{endpointSelector: {{}}, egress: [{{}}]}}\n"), "t.yaml:6:1: metadata.name: duplicate CiliumNetworkPolicy shop/p: already defined at t.yaml:1:1"),
    ];
    for (text, want) in cases {
        let errors = errors(&text);
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "want {want}\ngot {errors:#?}\nfor\n{text}"
        );
    }
}

#[test]
fn server_names_are_read_lower_cased_with_a_warning_on_ingress() {
    // spec §3.8: names and the 1.18 wildcard prefixes; ingress sees no TLS in the sidecar.
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: d}\n\
                spec:\n  endpointSelector: {}\n  egress:\n  - toPorts:\n    - ports: [{port: '443', protocol: TCP}]\n      \
                serverNames: [Api.Example.com, '*.one.org', '**.many.org']\n  ingress:\n  - toPorts:\n    \
                - ports: [{port: '443'}]\n      serverNames: [a.com]\n";
    let loaded = parse_str(Path::new("t.yaml"), text).unwrap();
    let rule = &loaded.policies[0].rules[0];
    assert_eq!(
        rule.egress[0].to_ports[0].server_names,
        ["api.example.com", "*.one.org", "**.many.org"]
    );
    let warnings: Vec<_> = loaded.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(warnings, ["spec.ingress[0].toPorts[0].serverNames"]);
    assert!(loaded.warnings[0].message.contains("ingress listener is plain HTTP"));
}

#[test]
fn spec_and_specs_together() {
    // spec §1.1: rules from spec then specs, each loaded.
    let text = "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: p}\n\
                spec: {endpointSelector: {}, ingress: [{}]}\nspecs: [{endpointSelector: {}, egress: [{}]}]\n";
    let loaded = parse_str(Path::new("t.yaml"), text).unwrap();
    let paths: Vec<_> = loaded.policies[0].rules.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["spec", "specs[0]"]);
    assert!(loaded.warnings.is_empty());
}

#[test]
fn namespace_defaults_with_a_warning() {
    // spec §1.1: a CNP without namespace gets `default`, and the user is told.
    let file = fixtures().join("good/02-web.yml");
    let loaded = load_path(&file).unwrap();
    assert_eq!(loaded.policies[0].namespace.as_deref(), Some("default"));
    let [warning] = loaded.warnings.as_slice() else { panic!("{:#?}", loaded.warnings) };
    assert_eq!(
        warning.to_string(),
        format!(
            "{}:5:3: metadata.namespace: CiliumNetworkPolicy without namespace: using namespace \
             \"default\" as kubectl would; write metadata.namespace to choose it",
            file.display()
        )
    );
}

#[test]
fn directory_loads_yaml_files_in_name_order() {
    let loaded = load_path(&fixtures().join("good")).unwrap();
    let names: Vec<_> = loaded.policies.iter().map(Policy::qualified_name).collect();
    assert_eq!(names, ["shop/inventory", "baseline", "default/web"]);
    assert_eq!(loaded.warnings.len(), 2);
}

#[test]
fn an_identical_copy_is_read_once_with_a_note() {
    // Cilium's connectivity-check-proxy.yaml lists CNP echo-c twice, identically; kubectl applies
    // it twice to the same effect.
    let doc = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: shop}\n\
               spec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '80'}]}]}]}\n";
    let loaded = parse_str(Path::new("t.yaml"), &format!("{doc}---\n# again\n{doc}")).unwrap();
    assert_eq!(loaded.policies.len(), 1);
    let notes: Vec<String> = loaded.notes.iter().map(ToString::to_string).collect();
    assert_eq!(notes, ["t.yaml:7:1: metadata.name: CiliumNetworkPolicy shop/p again, identical to t.yaml:1:1: read once"]);
}

#[test]
fn duplicate_name_across_files() {
    let dir = fixtures().join("duplicate");
    let err = load_path(&dir).unwrap_err();
    let a = dir.join("a.yaml");
    let b = dir.join("b.yaml");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:10:1: metadata.name: duplicate CiliumNetworkPolicy shop/inventory: already defined \
             at {}:1:1; rename one of them or delete the copy\n1 error",
            b.display(),
            a.display()
        )
    );
}

#[test]
fn one_bad_file_fails_the_whole_load() {
    let dir = tempfile::tempdir().unwrap();
    let good = fs::read_to_string(fixtures().join("good/02-web.yml")).unwrap();
    fs::write(dir.path().join("a.yaml"), good).unwrap();
    fs::write(dir.path().join("b.yaml"), "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n")
        .unwrap();
    fs::write(dir.path().join("c.yml"), b"\xff\xfe").unwrap();
    let err = load_path(dir.path()).unwrap_err();
    let files: Vec<_> =
        err.0.iter().map(|d| d.file.file_name().unwrap().to_str().unwrap()).collect();
    assert_eq!(files, ["b.yaml", "b.yaml", "c.yml"], "{err}");
    assert!(err.0[2].message.starts_with("cannot read the file"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = load_path(empty.path()).unwrap_err();
    assert!(err.to_string().contains("no *.yaml or *.yml file"), "{err}");
    let err = load_path(&empty.path().join("missing.yaml")).unwrap_err();
    assert!(err.to_string().contains("cannot read the file"), "{err}");
}

#[test]
fn odd_input_is_an_error_never_a_panic() {
    let deep_flow = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let deep_block: String = (0..200).map(|i| format!("{}a:\n", "  ".repeat(i))).collect();
    let inputs = [
        "- a\n- b\n",
        "just a string\n",
        "\tapiVersion: cilium.io/v2\n",
        "apiVersion: cilium.io/v2\n\tkind: CiliumNetworkPolicy\n",
        "a: b: c\n",
        "key: [unclosed\n",
        "\u{0}\u{1}\u{2}",
        "a: &x [*x]\n",
        "!!binary aGVsbG8=\n",
        "? [a, b]\n: c\n",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: []\nspec: 5\n",
        "apiVersion: [cilium.io/v2]\nkind: {a: b}\n",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\n\
         spec: {endpointSelector: {matchLabels: {[a]: b, ~: c, 1: d}}, ingress: [[[{}]]], egress: [~, 1, {toPorts: [[]]}]}\n",
        &deep_flow,
        &deep_block,
    ];
    for input in inputs {
        let errors = errors(input);
        assert!(!errors.is_empty(), "{input:?}");
        assert!(errors.iter().all(|e| e.starts_with("t.yaml:")), "{errors:#?}");
    }
}

/// Policies beside the manifests they protect: other objects are skipped with one note each,
/// lists are read item by item, empty documents are nothing; policy kinds that would be silently
/// ignored (Kubernetes network policies, misspellings) stay errors.
#[test]
fn other_objects_lists_and_empty_documents() {
    const CNP: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n";
    const SPEC: &str = "spec: {endpointSelector: {}, ingress: [{}]}\n";
    let text = format!(
        "---\n# nothing\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: shop}}\n\
         spec: {{replicas: 2}}\n---\n{CNP}metadata: {{name: a, namespace: shop}}\n{SPEC}---\n\
         apiVersion: v1\nkind: List\nitems:\n- {{apiVersion: v1, kind: Service, metadata: {{name: web}}}}\n\
         - {{apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, metadata: {{name: b, namespace: shop}}, {}}}\n\
         ---\napiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicyList\nitems: []\n---\n",
        SPEC.trim_end()
    );
    let loaded = parse_str(Path::new("t.yaml"), &text).unwrap();
    let names: Vec<_> = loaded.policies.iter().map(Policy::qualified_name).collect();
    assert_eq!(names, ["shop/a", "shop/b"]);
    let notes: Vec<_> = loaded.notes.iter().map(ToString::to_string).collect();
    assert_eq!(
        notes,
        [
            "t.yaml:4:1: skipped Deployment shop/web (apps/v1): not a Cilium network policy",
            "t.yaml:17:3: items[0]: skipped Service web (v1): not a Cilium network policy",
        ]
    );
    for empty in ["", "# only a comment\n", "---\n", "---\n---\n", "~\n"] {
        let loaded = parse_str(Path::new("t.yaml"), empty).unwrap();
        assert!(loaded.policies.is_empty() && loaded.notes.is_empty(), "{empty:?}");
    }

    let cases = [
        (format!("apiVersion: v1\nkind: List\nitems:\n- {{{}metadata: {{name: p}}, spec: 5}}\n", "apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, "), "t.yaml:4:"),
        (format!("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: p}}\n{SPEC}"), "t.yaml:2:7: kind: unsupported kind \"AdminNetworkPolicy\" (policy.networking.k8s.io/v1alpha1): l7gate enforces Cilium's policies only"),
        (format!("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolcy\nmetadata: {{name: p}}\n{SPEC}"), "t.yaml:2:7: kind: unsupported kind \"CiliumNetworkPolcy\": l7gate reads CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy; correct the spelling"),
        (format!("apiVersion: cilium.io/v2\nkind: ciliumclusterwidenetworkpolicy\nmetadata: {{name: p}}\n{SPEC}"), "t.yaml:2:7: kind: unsupported kind \"ciliumclusterwidenetworkpolicy\""),
    ];
    for (text, want) in cases {
        let errors = errors(&text);
        assert!(errors.iter().any(|e| e.starts_with(want)), "want {want}\ngot {errors:#?}");
    }
    let list_error = errors(
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, metadata: {name: p, namespace: s}, spec: {endpointSelector: {}, ingress: [{bogus: 1}]}}\n",
    );
    assert!(list_error[0].contains(": items[0].spec.ingress[0].bogus: "), "{list_error:#?}");

    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("app.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n",
    )
    .unwrap();
    fs::write(dir.path().join("empty.yaml"), "").unwrap();
    let err = load_path(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("no CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy here (1 other object skipped)"),
        "a directory without any policy is an error, not allow-all: {err}"
    );
}
