//! The rate limits' leaf state types: a worker's local caches of key cells for one snapshot (so
//! `crate::snapshot` owns them without depending on the feature), and what one exchange carries
//! from `admit` / `decide` to the answer.

use std::cell::RefCell;

use mcpgate_policies::limits::store::LocalCache;

use crate::config::Api;

/// Keys a worker remembers per rule before it starts its local cache over.
const LOCAL_KEYS: usize = 16 * 1024;

/// This worker's view of an API's rules under one snapshot: one local cache per rule, parallel
/// to `api.limits.rules` (the cells themselves live in the rules' shared stores).
pub struct LimitsApiState {
    pub locals: RefCell<Vec<LocalCache>>,
}

impl LimitsApiState {
    pub fn new(api: &Api) -> Self {
        LimitsApiState {
            locals: RefCell::new(
                api.limits
                    .rules
                    .iter()
                    .map(|r| LocalCache::new(r.rule.max_keys.min(LOCAL_KEYS)))
                    .collect(),
            ),
        }
    }
}

/// What the rate limits decided for one exchange.
#[derive(Debug, Default)]
pub struct LimitsExchange {
    /// The `RateLimit-Policy` and `RateLimit` values for the answer (empty: none).
    pub policy: String,
    pub limit: String,
    /// The rule that refused the request, for the exchange log (`throttled`).
    pub throttled: Option<Box<str>>,
}
