//! Shared fixtures of the engine's unit tests: two peer identities and a header map.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::config::Identity;
use crate::engine::Headers;

pub const FRONTEND: Identity = 300;
pub const BATCH: Identity = 301;

/// Request headers from a literal map.
pub struct Req(pub HashMap<&'static str, &'static str>);

impl Headers for Req {
    fn get(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        self.0.get(name).map(|v| Cow::Borrowed(v.as_bytes()))
    }
}

/// A request line for `inventory:8080`.
pub fn http(method: &'static str, path: &'static str) -> Req {
    Req(HashMap::from([(":method", method), (":path", path), (":authority", "inventory:8080")]))
}
