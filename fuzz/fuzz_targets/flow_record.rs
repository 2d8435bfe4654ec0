//! The flow-record writer: whatever bytes a request carries (method, path, Host, SNI), the
//! record is one line of valid JSON that holds them (lossily decoded), and `l7gate observe`'s
//! reader accepts it.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use l7gate_filter::config::{Config, Protocol};
use l7gate_filter::engine::{Direction, Reason, Verdict};
use l7gate_filter::flowlog::{Decision, FlowLog};
use libfuzzer_sys::fuzz_target;

fn flowlog() -> &'static FlowLog {
    static LOG: OnceLock<FlowLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let config: Config = l7gate::compile_endpoint(
            &manifests.join("policies"),
            &manifests.join("endpoints.yaml"),
            "inventory-api",
        )
        .expect("seed compiles");
        FlowLog::new(&config)
    })
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0);
    let (method, path, host) = (parts.next(), parts.next(), parts.next());
    let sni = parts.next().and_then(|s| std::str::from_utf8(s).ok());
    let verdict = Verdict::deny(Reason::NoAllowRule, None);
    let decision = Decision {
        direction: Direction::Ingress,
        verdict: &verdict,
        peer: Some(2),
        src_ip: Some("127.0.0.5".parse().expect("address")),
        dst_ip: None,
        port: 8080,
        protocol: Protocol::Tcp,
        method,
        path,
        host,
        sni,
    };
    let mut out = String::new();
    flowlog().write(&decision, &mut out);
    let record = format!("{{\"time\":\"t\",\"response_code\":403,\"response_flags\":\"-\",{out}}}");
    assert!(!record.contains('\n'), "a record spans lines: {record:?}");
    let value: serde_json::Value =
        serde_json::from_str(&record).unwrap_or_else(|e| panic!("invalid JSON ({e}): {record}"));
    if let Some(path) = path {
        assert_eq!(value["path"].as_str(), Some(&*String::from_utf8_lossy(path)), "{record}");
    }
    assert!(l7gate::flow::Flow::parse(&record).is_some(), "observe cannot read {record}");
});
