//! FQDN and CIDR matching: `matchName`/`matchPattern` compile and match, SNI and `:authority`
//! destinations, CIDR parsing and containment. Never a panic; a name matches its own exact
//! selector; a prefix contains its own address.
#![no_main]

use l7gate_filter::cidr::Cidr;
use l7gate_filter::config::FqdnSelector;
use l7gate_filter::fqdn::{normalise, Destination, NameMatcher};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, name) = text.split_once('\n').unwrap_or((&text, "example.com"));
    let normalised = normalise(name);
    for selector in [
        FqdnSelector::MatchName(pattern.to_string()),
        FqdnSelector::MatchPattern(pattern.to_string()),
    ] {
        if let Ok(matcher) = NameMatcher::compile(&selector) {
            let _ = matcher.matches(&normalised);
        }
    }
    if let Ok(exact) = NameMatcher::compile(&FqdnSelector::MatchName(name.to_string())) {
        assert!(exact.matches(&normalised), "{name:?} does not match matchName {name:?}");
    }
    let _ = Destination::of_server_name(name);
    let _ = Destination::of_authority(name);
    let _ = Destination::of_authority_with_port(name, 80);
    if let Ok(cidr) = Cidr::parse(pattern) {
        assert!(cidr.contains_addr(cidr.addr()), "{cidr} does not contain its own address");
        assert!(cidr.contains(&cidr));
        if let Ok(other) = Cidr::parse(name) {
            let _ = cidr.contains(&other);
        }
    }
});
