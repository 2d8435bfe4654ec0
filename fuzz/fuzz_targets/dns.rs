//! The DNS guard's response rewriting (bytes from the network resolver): never a panic; what it
//! passes on is itself a well-formed response that rewrites to itself (a fixed point) and holds
//! no address the guard refuses.
#![no_main]

use std::net::IpAddr;

use l7gate_filter::dns::{rewrite, rewrite_stream};
use libfuzzer_sys::fuzz_target;

/// Refuses 10.0.0.0/8 and loopback, as the engine refuses in-cluster and local addresses.
fn keep(ip: IpAddr) -> bool {
    !ip.is_loopback() && !matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(first) = rewrite(data, keep) {
        let second = rewrite(&first.message, keep).expect("the guard's output is well formed");
        assert_eq!(second.message, first.message, "not a fixed point");
        assert!(second.dropped.is_empty(), "refused addresses left in the output");
    }
    if let Ok(Some((stream, _))) = rewrite_stream(data, keep) {
        let again = rewrite_stream(&stream, keep).expect("well formed").expect("whole");
        assert_eq!(again.0, stream, "the stream is not a fixed point");
    }
});
