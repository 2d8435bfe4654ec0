//! Which endpoints a connected Envoy may fetch. Over mTLS its client certificate names them: each
//! URI SAN `spiffe://<trust domain>/ns/<namespace>/pod/<name>` names endpoint
//! `<namespace>/<name>` (a gateway in front of several endpoints carries several). A stream asks
//! for one endpoint (node id or `node.metadata["l7gate.endpoint"]`); it gets that endpoint's
//! configs only if its certificate names it, and nothing else ever. A bare name (`inventory-api`)
//! means the one endpoint of that name the certificate names, never whichever endpoint the
//! inventory has under that name. Plaintext (loopback only, `--plaintext`) authorizes everything.

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What a connection proved about itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Peer {
    /// `--plaintext`: no identity, everything authorized.
    Plaintext,
    /// A verified client certificate naming these endpoints (`namespace/name`).
    Certified { endpoints: Vec<String> },
}

/// The endpoint key prefix of a SPIFFE ID, after the trust domain.
const NAMESPACE_SEGMENT: &str = "ns";
const POD_SEGMENT: &str = "pod";

/// The peer a TLS connection's verified chain (leaf first) proves; no chain names nothing.
pub fn certified(chain: Option<&[CertificateDer<'_>]>, trust_domain: &str) -> Peer {
    let leaf = chain.and_then(|c| c.first());
    Peer::Certified {
        endpoints: leaf.map(|leaf| endpoints_named(leaf, trust_domain)).unwrap_or_default(),
    }
}

/// The endpoints a certificate's URI SANs name in `trust_domain`; other SANs are ignored.
fn endpoints_named(leaf: &CertificateDer<'_>, trust_domain: &str) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(leaf.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => endpoint_of_spiffe_id(uri, trust_domain),
            _ => None,
        })
        .collect()
}

/// `spiffe://<trust_domain>/ns/<namespace>/pod/<name>` → `<namespace>/<name>`.
pub fn endpoint_of_spiffe_id(uri: &str, trust_domain: &str) -> Option<String> {
    let rest = uri.strip_prefix("spiffe://")?.strip_prefix(trust_domain)?.strip_prefix('/')?;
    match rest.split('/').collect::<Vec<_>>()[..] {
        [NAMESPACE_SEGMENT, namespace, POD_SEGMENT, name]
            if !namespace.is_empty() && !name.is_empty() =>
        {
            Some(format!("{namespace}/{name}"))
        }
        _ => None,
    }
}

/// The SPIFFE ID that names endpoint `namespace/name` (`l7gate certs` writes it).
pub fn spiffe_id(trust_domain: &str, namespace: &str, name: &str) -> String {
    format!("spiffe://{trust_domain}/{NAMESPACE_SEGMENT}/{namespace}/{POD_SEGMENT}/{name}")
}

/// The endpoint key a stream of `peer` asking for `requested` is served, or why it is refused.
pub fn authorize(peer: &Peer, requested: &str) -> Result<String, String> {
    let endpoints = match peer {
        Peer::Plaintext => return Ok(requested.to_string()),
        Peer::Certified { endpoints } => endpoints,
    };
    let granted: Vec<&String> = if requested.contains('/') {
        endpoints.iter().filter(|e| *e == requested).collect()
    } else {
        endpoints.iter().filter(|e| e.rsplit('/').next() == Some(requested)).collect()
    };
    match granted[..] {
        [one] => Ok(one.clone()),
        [] if endpoints.is_empty() => Err(format!(
            "endpoint {requested:?} refused: the client certificate names no endpoint (a URI SAN \
             spiffe://<trust domain>/ns/<namespace>/pod/<name> in the trust domain of --trust-domain)"
        )),
        [] => Err(format!(
            "endpoint {requested:?} refused: the client certificate names only {}",
            endpoints.join(", ")
        )),
        _ => Err(format!(
            "endpoint {requested:?} refused: ambiguous, the client certificate names {}; set the \
             node id to namespace/name",
            granted.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" and ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_name_endpoints_of_the_trust_domain_only() {
        let td = "cluster.local";
        let of = |uri: &str| endpoint_of_spiffe_id(uri, td);
        assert_eq!(
            of(&spiffe_id(td, "default", "inventory-api")),
            Some("default/inventory-api".into())
        );
        for other in [
            "spiffe://cluster.localx/ns/default/pod/a",
            "spiffe://evil/ns/default/pod/a",
            "spiffe://cluster.local/ns/default/sa/a",
            "spiffe://cluster.local/ns/default/pod/a/b",
            "spiffe://cluster.local/ns//pod/a",
            "spiffe://cluster.local/ns/default/pod/",
            "https://cluster.local/ns/default/pod/a",
        ] {
            assert_eq!(of(other), None, "{other}");
        }
    }

    #[test]
    fn a_certificate_grants_the_endpoints_it_names_and_no_other() {
        let peer = Peer::Certified { endpoints: vec!["default/a".into(), "shop/b".into()] };
        assert_eq!(authorize(&peer, "default/a"), Ok("default/a".into()));
        assert_eq!(authorize(&peer, "b"), Ok("shop/b".into()));
        assert!(authorize(&peer, "default/b")
            .unwrap_err()
            .contains("names only default/a, shop/b"));
        assert!(authorize(&peer, "c").is_err());
        let twice = Peer::Certified { endpoints: vec!["x/a".into(), "y/a".into()] };
        assert!(authorize(&twice, "a").unwrap_err().contains("ambiguous"));
        assert_eq!(authorize(&twice, "y/a"), Ok("y/a".into()));
        let none = Peer::Certified { endpoints: vec![] };
        assert!(authorize(&none, "a").unwrap_err().contains("names no endpoint"));
        assert_eq!(authorize(&Peer::Plaintext, "anything"), Ok("anything".into()));
    }
}
