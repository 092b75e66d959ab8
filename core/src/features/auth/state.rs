//! The plans' per-worker state for one API under one configuration snapshot (owned by
//! `snapshot::ApiState`, so a reload starts afresh and nothing outlives its snapshot):
//! validated-token caches and key sets, the endpoints discovered from the authorization
//! server's metadata, and (Mode A) the upstream's protected-resource metadata.

use std::cell::RefCell;
use std::time::Instant;

use mcpgate_policies::auth::WorkerAuthState;

use crate::config::Api;

/// Endpoints learnt from an OAuth2 plan's authorization-server metadata.
#[derive(Default, Clone)]
pub struct Discovered {
    pub jwks_uri: Option<String>,
    pub introspection_endpoint: Option<String>,
}

/// An API with plans: the policies' worker state and, per plan, what discovery found.
pub struct PlanState {
    pub state: WorkerAuthState,
    pub discovered: Vec<Discovered>,
}

/// Never borrowed across an `.await`: each access is a short synchronous borrow.
pub struct AuthApiState {
    /// `None` for an API without plans.
    pub plans: Option<RefCell<PlanState>>,
    /// Mode A (an API without plans in front of a secured upstream): the upstream's metadata
    /// with `resource` rewritten, and when it was fetched (`None` inside: the upstream has none).
    pub upstream_prm: RefCell<Option<(Instant, Option<Vec<u8>>)>>,
}

impl AuthApiState {
    pub fn new(api: &Api) -> Self {
        AuthApiState {
            plans: api.auth.as_ref().map(|a| {
                RefCell::new(PlanState {
                    state: a.auth.new_worker_state(),
                    discovered: vec![Discovered::default(); a.auth.plans().len()],
                })
            }),
            upstream_prm: RefCell::new(None),
        }
    }
}
