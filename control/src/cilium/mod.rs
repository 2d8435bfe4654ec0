//! Cilium policy input: the typed model, the YAML parser that builds it with positions, and the
//! validator that applies Cilium's rules (spec §7) and rejects what l7gate cannot enforce.

pub mod model;
pub mod parse;
pub(crate) mod validate;
