//! Header actions of `headerMatches` with `mismatch` (spec §5.5). Such a condition never fails
//! its element; when the element's other fields match and the header is missing or differs from
//! the policy's value, the proxy acts on the request before forwarding it: `LOG` records the
//! mismatch, `ADD` adds the header with the policy's value, `DELETE` removes the mismatching
//! header, `REPLACE` sets it to the policy's value. As in Cilium's proxy, the actions of every
//! element that matches apply, not only the deciding one's.

use crate::config::{Mismatch, Origin};

use super::http::RequestLine;

/// One compiled condition with a `mismatch` action.
#[derive(Debug, Clone)]
pub struct HeaderAction {
    /// Lower-case.
    pub name: String,
    /// The policy's value; `None`: presence is enough.
    pub value: Option<Vec<u8>>,
    pub mismatch: Mismatch,
}

/// What to do to the request: the header, the action and the value to set or add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite<'e> {
    pub name: &'e str,
    pub action: Mismatch,
    /// The policy's value (empty when the condition names none).
    pub value: &'e [u8],
    /// The rule and the element (`http[N]`) whose condition it is.
    pub origin: &'e Origin,
    pub http_rule: usize,
}

impl Rewrite<'_> {
    /// Whether the action changes the request (`LOG` only records).
    pub fn changes_request(&self) -> bool {
        self.action != Mismatch::Log
    }
}

impl HeaderAction {
    /// The rewrite this condition asks for on this request, if the header does not satisfy it
    /// (Cilium's `HeaderMatch::allowed`: a `DELETE` of a missing header, or of one only
    /// required to be present, does nothing).
    pub fn apply<'e: 'h, 'h>(
        &'e self,
        line: &RequestLine<'h>,
        origin: &'e Origin,
        http_rule: usize,
    ) -> Option<Rewrite<'e>> {
        let (present, satisfied) = line.header(&self.name, |got| match (got, &self.value) {
            (None, _) => (false, false),
            (Some(_), None) => (true, true),
            (Some(got), Some(want)) => (true, got == want.as_slice()),
        });
        if satisfied {
            return None;
        }
        if self.mismatch == Mismatch::Delete && (self.value.is_none() || !present) {
            return None;
        }
        Some(Rewrite {
            name: &self.name,
            action: self.mismatch,
            value: self.value.as_deref().unwrap_or_default(),
            origin,
            http_rule,
        })
    }
}
