//! The IETF `RateLimit-Policy` and `RateLimit` header values (draft-ietf-httpapi-ratelimit-headers,
//! revisions 08 to 11: structured-field lists of quota policy items), and `Retry-After`.
//!
//! ```text
//! RateLimit-Policy: "calls";q=5;w=60, "daily";q=1000;w=86400
//! RateLimit: "calls";r=3;t=12, "daily";r=998;t=3600
//! ```
//!
//! `q` is a rate's burst or a quota's count and `w` its interval or period (a month as 30 days);
//! `r` is what remains, `t` the seconds until the budget is whole again — or, when nothing
//! remains, until the next unit is back, which is when the client may try again.

use std::fmt::Write;

use super::{Decision, Limit};

/// Seconds, rounded up (a client that waits `t` must find the budget there).
pub fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// Appends one `RateLimit-Policy` item (after a `, ` when `out` is not empty).
pub fn push_policy(out: &mut String, name: &str, limit: &Limit) {
    if !out.is_empty() {
        out.push_str(", ");
    }
    let _ = write!(
        out,
        "\"{name}\";q={};w={}",
        limit.quota_units(),
        limit.window_secs()
    );
}

/// Appends one `RateLimit` item.
pub fn push_limit(out: &mut String, name: &str, limit: &Limit, decision: &Decision) {
    if !out.is_empty() {
        out.push_str(", ");
    }
    let t_ms = match (decision.remaining, decision.allowed, limit) {
        (0, false, _) => decision.retry_after_ms,
        // Allowed, the last unit taken: the next one is back once all but `burst - 1` of the
        // budget has come back (a quota's only at the period's end).
        (0, true, Limit::Rate(rate)) => {
            let emission_ms = rate.emission_ns().div_ceil(1_000_000);
            decision
                .reset_ms
                .saturating_sub(emission_ms.saturating_mul(u64::from(rate.burst()) - 1))
        }
        _ => decision.reset_ms,
    };
    let _ = write!(
        out,
        "\"{name}\";r={};t={}",
        decision.remaining,
        ceil_secs(t_ms)
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::limits::{Period, Quota, Rate};
    use std::time::Duration;

    #[test]
    fn items_are_joined_as_a_list() {
        let rate = Limit::Rate(Rate::new(5, Duration::from_secs(60), 5).unwrap());
        let quota = Limit::Quota(Quota::new(1000, Period::Day).unwrap());
        let mut policy = String::new();
        push_policy(&mut policy, "calls", &rate);
        push_policy(&mut policy, "daily", &quota);
        assert_eq!(policy, "\"calls\";q=5;w=60, \"daily\";q=1000;w=86400");
        let mut limit = String::new();
        push_limit(
            &mut limit,
            "calls",
            &rate,
            &Decision {
                allowed: true,
                remaining: 3,
                retry_after_ms: 0,
                reset_ms: 11_001,
            },
        );
        push_limit(
            &mut limit,
            "daily",
            &quota,
            &Decision {
                allowed: false,
                remaining: 0,
                retry_after_ms: 1500,
                reset_ms: 3_600_000,
            },
        );
        assert_eq!(limit, "\"calls\";r=3;t=12, \"daily\";r=0;t=2");
        // The last unit of a 5-per-hour rate: the next is back in 720 s, not when all 5 are.
        let hourly = Limit::Rate(Rate::new(5, Duration::from_secs(3600), 5).unwrap());
        let mut last = String::new();
        push_limit(
            &mut last,
            "calls",
            &hourly,
            &Decision {
                allowed: true,
                remaining: 0,
                retry_after_ms: 0,
                reset_ms: 3_600_000,
            },
        );
        assert_eq!(last, "\"calls\";r=0;t=720");
    }
}
