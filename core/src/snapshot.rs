//! A worker's view of one configuration snapshot: the immutable [`Config`] plus the state this
//! worker keeps for it, per API (validated-token caches, discovered endpoints, the upstream's
//! protected-resource metadata, exchange-log labels). Built whole when the worker first serves a
//! request under a new snapshot (prepare) and swapped in between requests (commit), after
//! monolake's per-worker factories: a request holds its snapshot (`Rc`) to the end, and a cache
//! belongs to its snapshot by being owned by it, never by an address comparison.

use std::sync::Arc;

use crate::config::Config;
use crate::features::auth::state::AuthApiState;
use crate::features::integrity::state::IntegrityApiState;
use crate::features::limits::state::LimitsApiState;
use crate::features::observe::state::ObserveApiState;

/// One API's per-worker state under a snapshot. A feature with state of its own adds a field.
pub struct ApiState {
    pub auth: AuthApiState,
    pub observe: ObserveApiState,
    pub limits: LimitsApiState,
    /// The list cache and this worker's view of the pins (built on the API's first request).
    pub integrity: IntegrityApiState,
}

pub struct Snapshot {
    pub config: Arc<Config>,
    /// Parallel to `config.apis`.
    pub apis: Vec<ApiState>,
    /// The `Shared` generation it was built for.
    pub generation: u64,
}

impl Snapshot {
    /// Builds the worker state for `config` (no I/O; nothing can fail: `config` is validated).
    pub fn prepare(config: Arc<Config>, generation: u64) -> Snapshot {
        let apis = config
            .apis
            .iter()
            .map(|api| ApiState {
                auth: AuthApiState::new(api),
                observe: ObserveApiState::default(),
                limits: LimitsApiState::new(api),
                integrity: IntegrityApiState::default(),
            })
            .collect();
        Snapshot {
            config,
            apis,
            generation,
        }
    }
}
