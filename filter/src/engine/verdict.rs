//! Verdicts and their attribution: allowed or not, why, and which policy rule decided.

use std::fmt;

use crate::config::Origin;

use super::rewrite::Rewrite;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// Why a verdict was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No policy selecting the endpoint has a section for this direction (spec §4.1 case 1).
    NotEnforced,
    /// An allow rule without HTTP rules selects the peer and port.
    AllowedL3L4,
    /// An HTTP rule element matched (index within the deciding rule's `http` list).
    AllowedL7 { http_rule: usize },
    /// A deny rule selects the peer and port (spec §4.2: deny wins).
    DenyRule,
    /// Default deny: no allow rule selects this peer and port.
    NoAllowRule,
    /// The only allow rules for the peer and port have `serverNames`, and the connection is not
    /// TLS or its SNI matches none of them (spec §4.4 step 4).
    ServerNameNotAllowed,
    /// Allow rules select the peer and port, but none of their HTTP rules matched.
    L7NotMatched,
    /// Allow rules with HTTP rules select the peer and port, but the path could still resolve
    /// elsewhere in the application (a dot segment behind `;` parameters or an encoding Envoy
    /// leaves alone, see `engine::pathform`): denied, whatever the rules say.
    AmbiguousPath,
    /// The caller of an egress listener is not the endpoint it serves (another process would
    /// borrow the endpoint's egress rights): denied before any rule is looked at.
    ForeignCaller,
    /// The egress destination is a local address of the endpoint (an IP literal in loopback,
    /// unspecified or link-local space): denied before any rule is looked at.
    LocalDestination,
    /// No usable configuration: everything is denied (fail closed).
    Unconfigured(String),
}

impl Reason {
    /// A stable short code for logs and JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NotEnforced => "policy-not-enforced",
            Reason::AllowedL3L4 => "allowed-l3-l4",
            Reason::AllowedL7 { .. } => "allowed-l7",
            Reason::DenyRule => "denied-by-deny-rule",
            Reason::NoAllowRule => "default-deny",
            Reason::ServerNameNotAllowed => "denied-server-name",
            Reason::L7NotMatched => "denied-l7-no-rule-matched",
            Reason::AmbiguousPath => "denied-ambiguous-path",
            Reason::ForeignCaller => "denied-foreign-caller",
            Reason::LocalDestination => "denied-local-destination",
            Reason::Unconfigured(_) => "no-configuration",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotEnforced => f.write_str(
                "no policy selects the endpoint for this direction, so everything is allowed",
            ),
            Reason::AllowedL3L4 => f.write_str("allowed at L3/L4 (the rule has no HTTP rules)"),
            Reason::AllowedL7 { http_rule } => write!(f, "allowed by HTTP rule http[{http_rule}]"),
            Reason::DenyRule => f.write_str("denied by a deny rule"),
            Reason::NoAllowRule => {
                f.write_str("default deny: no allow rule selects this peer and port")
            }
            Reason::ServerNameNotAllowed => f.write_str(
                "denied: the rules for this peer and port need TLS with a server name (SNI) in their serverNames",
            ),
            Reason::L7NotMatched => f.write_str("denied at L7: no HTTP rule matched the request"),
            Reason::AmbiguousPath => f.write_str(
                "denied at L7: the path has a segment the application could read as a dot segment",
            ),
            Reason::ForeignCaller => {
                f.write_str("denied: the caller is not the endpoint this egress listener serves")
            }
            Reason::LocalDestination => f.write_str(
                "denied: the destination is a local address (loopback, unspecified or link-local)",
            ),
            Reason::Unconfigured(why) => write!(f, "denied: no usable configuration ({why})"),
        }
    }
}

/// The outcome of [`crate::engine::Engine::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<'e> {
    /// Whether the request passes (true for an `audit` verdict too).
    pub allowed: bool,
    /// A would-be denial let through (spec §8): the enforced policy allows, the audit view
    /// denies; `reason` and `origin` are the audit view's denial.
    pub audit: bool,
    pub reason: Reason,
    /// The deciding rule: the deny rule, the allowing rule, or for an L7 denial the first rule
    /// whose HTTP rules were tried. `None` for default deny and unenforced directions.
    pub origin: Option<&'e Origin>,
    /// Header actions to apply before forwarding an allowed request (spec §5.5), in
    /// configuration order.
    pub rewrites: Vec<Rewrite<'e>>,
}

impl<'e> Verdict<'e> {
    pub fn allow(reason: Reason, origin: Option<&'e Origin>) -> Self {
        Verdict { allowed: true, audit: false, reason, origin, rewrites: Vec::new() }
    }
    pub fn deny(reason: Reason, origin: Option<&'e Origin>) -> Self {
        Verdict { allowed: false, audit: false, reason, origin, rewrites: Vec::new() }
    }
    /// The audit view's denial `denied`, let through with the enforced view's `rewrites`.
    pub fn audited(denied: Verdict<'e>, rewrites: Vec<Rewrite<'e>>) -> Self {
        Verdict { allowed: true, audit: true, rewrites, ..denied }
    }

    /// `allowed`, `denied` or `audit`: the verdict as flow records, metrics and traces name it.
    pub fn label(&self) -> &'static str {
        match (self.allowed, self.audit) {
            (_, true) => "audit",
            (true, false) => "allowed",
            (false, false) => "denied",
        }
    }
}
