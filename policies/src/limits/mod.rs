//! Rate limits and quotas, the parts without I/O: the GCRA ([`gcra`]) and calendar quotas
//! ([`quota`]) as pure functions of a stored `u64` and an injected clock; the node-wide store of
//! those cells, lock-free on the hot path ([`store`]); what a rule selects and how it keys callers
//! ([`rule`]); the textual forms ([`spec`]); the Redis protocol and the one-round-trip script of
//! cluster scope ([`resp`], [`cluster`]); the IETF `RateLimit` / `RateLimit-Policy` header values
//! ([`header`]). The engine's feature (`core/src/features/limits`) does the I/O.

pub mod cluster;
pub mod gcra;
pub mod header;
pub mod quota;
pub mod resp;
pub mod rule;
pub mod spec;
pub mod store;

use std::time::Duration;

pub use gcra::Rate;
pub use quota::{Period, Quota};

/// The JSON-RPC error code of a throttled request (implementation-defined range; 429 in it).
pub const THROTTLED: i64 = -32029;
/// Its message.
pub const THROTTLED_MESSAGE: &str = "Rate limit exceeded";
/// Longest rule name (it is a metric label and a header token).
pub const MAX_RULE_NAME: usize = 64;

/// A limit that does not load. `at` names the field within the rule (`rate`, `names`, `key`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct LimitError {
    pub at: String,
    pub message: String,
}

impl LimitError {
    pub fn new(at: impl Into<String>, message: impl Into<String>) -> Self {
        LimitError {
            at: at.into(),
            message: message.into(),
        }
    }
}

/// A rule's budget: a rate or a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Rate(Rate),
    Quota(Quota),
}

/// One decision, whichever the limit (node or cluster), in the units the answers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub remaining: u32,
    pub retry_after_ms: u64,
    pub reset_ms: u64,
}

impl Limit {
    /// The `q` of `RateLimit-Policy`: the burst of a rate, the count of a quota.
    pub fn quota_units(&self) -> u32 {
        match self {
            Limit::Rate(r) => r.burst(),
            Limit::Quota(q) => q.limit(),
        }
    }

    /// The `w` of `RateLimit-Policy`, seconds: the rate's interval, the quota's period (a month
    /// is given as 30 days).
    pub fn window_secs(&self) -> u64 {
        match self {
            Limit::Rate(r) => Duration::from_nanos(r.period_ns()).as_secs().max(1),
            Limit::Quota(q) => match q.period() {
                Period::Hour => 3600,
                Period::Day => 86_400,
                Period::Month => 30 * 86_400,
            },
        }
    }
}

/// Whether `name` may name a rule: 1 to 64 of `A-Z a-z 0-9 _ - .` (a metric label value and a
/// structured-field string without escapes).
pub fn valid_rule_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_RULE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names() {
        assert!(valid_rule_name("calls-per-user.v2"));
        assert!(!valid_rule_name(""));
        assert!(!valid_rule_name("a b"));
        assert!(!valid_rule_name("a\"b"));
        assert!(!valid_rule_name(&"a".repeat(65)));
    }
}
