//! What every stream context shares of the configuration in force when it was created: the
//! compiled engine, its observer, the filter's role and the trusted connection header. Its own
//! module so the contexts (`http`, `tls`, `dns`) depend on it and not on `root`, which creates
//! them.

use super::observe::Observer;
use crate::engine::Engine;
use crate::role::Role;

/// What a stream needs of the configuration in force when it was created.
pub struct Plugin {
    pub engine: Engine,
    /// Flow records and counters of this configuration.
    pub observer: Observer,
    pub role: Role,
    /// The lower-case name of the header carrying the connection's addresses, if the
    /// bootstrap sets one; else the filter reads them as properties.
    pub connection_header: Option<String>,
}
