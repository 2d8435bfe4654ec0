//! The request path allocates nothing: parsing the host's header buffer, the identity lookup,
//! the indexed decision and the flow record into its reused buffer run under a counting
//! allocator, natively and on wasm32, for allowed and denied requests. What the glue adds per
//! request is the host's own buffer (one per hostcall result, allocated by the host).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crate::config::*;
use crate::engine::{Direction, Engine, Request};
use crate::flowlog::{Decision, FlowLog};
use crate::headermap::{connection_addresses, serialize, HeaderMap, CONNECTION_HEADER};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

const FRONTEND: Identity = 300;

/// 400 HTTP rules for frontend (so the literal-prefix index is used), one with a header rule.
fn config() -> Config {
    let rule = |i: usize| HttpRule {
        method: Some(if i.is_multiple_of(2) { "GET".into() } else { "POST|PUT".into() }),
        path: Some(format!("/api/svc-{i}/items/[0-9]+")),
        headers: if i == 7 {
            vec![HeaderCondition {
                name: "x-tenant".into(),
                value: Some("blue".into()),
                mismatch: None,
            }]
        } else {
            vec![]
        },
        ..Default::default()
    };
    Config {
        version: SCHEMA_VERSION,
        endpoint: EndpointRef { name: "api".into(), namespace: "default".into(), identity: 0 },
        identities: vec![IdentityInfo {
            id: FRONTEND,
            name: "default/frontend".into(),
            labels: vec!["k8s:app=frontend".into()],
        }],
        ipcache: vec![IpCacheEntry { cidr: "10.0.0.1/32".into(), identity: FRONTEND }],
        local: vec![],
        ingress: DirectionPolicy {
            enforced: true,
            rules: vec![Rule {
                action: Action::Allow,
                origin: Origin {
                    kind: "CiliumNetworkPolicy".into(),
                    policy: "default/api".into(),
                    rule: "spec.ingress[0].toPorts[0]".into(),
                },
                peers: Peers::Identities(vec![FRONTEND]),
                ports: Some(vec![PortRange { protocol: Protocol::Tcp, first: 8080, last: 8080 }]),
                http: Some((0..400).map(rule).collect()),
                server_names: None,
            }],
            audit: None,
        },
        egress: DirectionPolicy { enforced: false, rules: vec![], audit: None },
    }
}

#[test]
fn deciding_and_recording_a_request_allocates_nothing() {
    let config = config();
    let engine = Engine::compile(&config).unwrap();
    let flowlog = FlowLog::new(&config);
    let mut record = String::with_capacity(1024);
    let request = |method: &str, path: &str, tenant: &str| {
        serialize(&[
            (b":authority", b"api:8080"),
            (b":path", path.as_bytes()),
            (b":method", method.as_bytes()),
            (b"user-agent", b"curl/8.5.0"),
            (b"x-tenant", tenant.as_bytes()),
            (CONNECTION_HEADER.as_bytes(), b"10.0.0.1:40000 10.0.0.10:8080"),
        ])
    };
    let cases = [
        (request("GET", "/api/svc-200/items/42", "red"), true),
        (request("PUT", "/api/svc-7/items/9", "blue"), true),
        (request("PUT", "/api/svc-7/items/9", "red"), false),
        (request("DELETE", "/api/svc-200/items/42", "red"), false),
        // A dot in the path: the ambiguous-path check reads it in place.
        (request("GET", "/api/svc-7/items/9.json", "blue"), false),
    ];
    // regex-lite builds a regex's matching cache on its first use and keeps it: warm up once,
    // as any request after the first finds it.
    for (round, (buffer, allowed)) in cases.iter().chain(&cases).enumerate() {
        let mut verdict_allowed = None;
        let n = allocations_in(|| {
            let headers = HeaderMap::parse(buffer, Some(CONNECTION_HEADER)).unwrap();
            let (peer, local) = connection_addresses(headers.connection.unwrap()).unwrap();
            let req = Request {
                direction: Direction::Ingress,
                peer: engine.identity_of(peer.ip()),
                port: local.port(),
                protocol: Protocol::Tcp,
                server_name: None,
                sni: None,
            };
            let verdict = engine.decide(&req, Some(&headers));
            verdict_allowed = Some(verdict.allowed);
            let d = Decision {
                direction: Direction::Ingress,
                verdict: &verdict,
                peer: Some(req.peer),
                src_ip: Some(peer.ip()),
                dst_ip: Some(local.ip()),
                port: local.port(),
                protocol: Protocol::Tcp,
                method: headers.method,
                path: headers.path,
                host: headers.authority,
                sni: None,
            };
            flowlog.write(&d, &mut record);
        });
        assert_eq!(verdict_allowed, Some(*allowed), "{record}");
        if round >= cases.len() {
            assert_eq!(n, 0, "{n} allocations deciding {record}");
        }
    }
}
