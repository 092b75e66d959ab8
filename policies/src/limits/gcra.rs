//! The generic cell rate algorithm (GCRA): a rate of `count` units per `period` with `burst` units
//! available at once, kept as one number per key — the theoretical arrival time (TAT) of the next
//! unit. That single `u64` is what makes a lock-free node-wide limiter possible: deciding is a
//! read, a little arithmetic and one compare-and-swap (see [`super::store`]).
//!
//! Times are nanoseconds on any monotonic clock the caller picks (the gateway: since its start);
//! every function takes `now` explicitly so tests inject the clock.

use std::time::Duration;

use super::LimitError;

/// A rate: `count` units per `period`, `burst` of them usable at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    count: u32,
    period_ns: u64,
    burst: u32,
    /// `period / count`: the time one unit takes to come back.
    emission_ns: u64,
}

/// What one decision says, for the answer and the `RateLimit` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    /// Units still usable right now (after this decision).
    pub remaining: u32,
    /// Refused: how long until the request would be allowed. 0 when allowed.
    pub retry_after_ns: u64,
    /// How long until the key is back to its full burst.
    pub reset_ns: u64,
}

impl Rate {
    /// `count` per `period`, `burst` at once (`burst` ≥ 1). The emission interval is rounded
    /// down to the nanosecond, never below 1.
    pub fn new(count: u32, period: Duration, burst: u32) -> Result<Rate, LimitError> {
        if count == 0 {
            return Err(LimitError::new("rate", "the count must be at least 1"));
        }
        if burst == 0 {
            return Err(LimitError::new("burst", "must be at least 1"));
        }
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        if period_ns == 0 {
            return Err(LimitError::new("rate", "the interval must be positive"));
        }
        let emission_ns = (period_ns / u64::from(count)).max(1);
        if emission_ns.checked_mul(u64::from(burst)).is_none() {
            return Err(LimitError::new("burst", "burst × interval is too large"));
        }
        Ok(Rate {
            count,
            period_ns,
            burst,
            emission_ns,
        })
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    pub fn emission_ns(&self) -> u64 {
        self.emission_ns
    }

    /// How far ahead of `now` the TAT may run: the whole burst.
    fn tolerance_ns(&self) -> u64 {
        self.emission_ns.saturating_mul(u64::from(self.burst))
    }

    /// Decides `cost` units at `now` against the stored `tat` (0 for a key never seen). Returns
    /// the TAT to store (`None`: refused, leave it as it is) and the outcome.
    pub fn decide(&self, tat: u64, now: u64, cost: u32) -> (Option<u64>, Outcome) {
        let start = tat.max(now);
        let new_tat = start.saturating_add(self.emission_ns.saturating_mul(u64::from(cost)));
        let tolerance = self.tolerance_ns();
        let ahead = new_tat - now;
        if ahead <= tolerance {
            let remaining = ((tolerance - ahead) / self.emission_ns) as u32;
            (
                Some(new_tat),
                Outcome {
                    allowed: true,
                    remaining: remaining.min(self.burst),
                    retry_after_ns: 0,
                    reset_ns: ahead,
                },
            )
        } else {
            let used = start - now;
            let remaining = (tolerance.saturating_sub(used) / self.emission_ns) as u32;
            (
                None,
                Outcome {
                    allowed: false,
                    remaining: remaining.min(self.burst),
                    retry_after_ns: ahead - tolerance,
                    reset_ns: used,
                },
            )
        }
    }

    /// Gives back `cost` units taken by a decision whose request was refused by another rule
    /// after all (all-or-nothing across rules). A TAT below `now` means "full", so going under it
    /// is harmless.
    pub fn refund(&self, tat: u64, cost: u32) -> u64 {
        tat.saturating_sub(self.emission_ns.saturating_mul(u64::from(cost)))
    }

    /// Whether a stored TAT says the key is back to its full burst at `now`: forgetting it then
    /// loses nothing.
    pub fn is_idle(tat: u64, now: u64) -> bool {
        tat <= now
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_burst_then_one_per_emission_interval() {
        let rate = Rate::new(5, Duration::from_secs(10), 5).unwrap();
        assert_eq!(rate.emission_ns(), 2 * S);
        let mut tat = 0;
        let now = 100 * S;
        for expected_remaining in (0..5).rev() {
            let (next, out) = rate.decide(tat, now, 1);
            assert!(out.allowed);
            assert_eq!(out.remaining, expected_remaining);
            tat = next.unwrap();
        }
        let (next, out) = rate.decide(tat, now, 1);
        assert!(!out.allowed && next.is_none());
        assert_eq!(out.retry_after_ns, 2 * S);
        assert_eq!(out.remaining, 0);
        assert_eq!(out.reset_ns, 10 * S);
        // One interval later exactly one unit is back.
        let (next, out) = rate.decide(tat, now + 2 * S, 1);
        assert!(out.allowed && out.remaining == 0);
        let (_, out) = rate.decide(next.unwrap(), now + 2 * S, 1);
        assert!(!out.allowed);
    }

    #[test]
    fn cost_larger_than_the_burst_is_never_allowed() {
        let rate = Rate::new(2, Duration::from_secs(1), 2).unwrap();
        assert!(!rate.decide(0, S, 3).1.allowed);
        assert!(rate.decide(0, S, 2).1.allowed);
    }

    #[test]
    fn refund_restores_the_budget() {
        let rate = Rate::new(3, Duration::from_secs(3), 3).unwrap();
        let (tat, _) = rate.decide(0, S, 3);
        let tat = tat.unwrap();
        assert!(!rate.decide(tat, S, 1).1.allowed);
        let back = rate.refund(tat, 1);
        assert!(rate.decide(back, S, 1).1.allowed);
    }

    #[test]
    fn bad_rates_are_refused() {
        assert!(Rate::new(0, Duration::from_secs(1), 1).is_err());
        assert!(Rate::new(1, Duration::ZERO, 1).is_err());
        assert!(Rate::new(1, Duration::from_secs(1), 0).is_err());
        assert!(Rate::new(1, Duration::from_secs(u64::MAX / 2), u32::MAX).is_err());
    }

    proptest! {
        /// Over any schedule of requests, the units allowed in any window of length `w` never
        /// exceed `burst + w / emission` (the GCRA bound), and a request is never refused when
        /// the key is idle.
        #[test]
        fn never_more_than_burst_plus_refill(
            count in 1u32..50, period_ms in 1u64..10_000, burst in 1u32..20,
            gaps in proptest::collection::vec(0u64..2_000_000_000, 1..200),
        ) {
            let rate = Rate::new(count, Duration::from_millis(period_ms), burst).unwrap();
            let mut tat = 0u64;
            let mut now = 1u64;
            let mut allowed_at = Vec::new();
            for gap in gaps {
                now += gap;
                let idle = Rate::is_idle(tat, now);
                let (next, out) = rate.decide(tat, now, 1);
                if idle { prop_assert!(out.allowed); }
                if let Some(next) = next { tat = next; allowed_at.push(now); }
                prop_assert_eq!(out.allowed, next.is_some());
            }
            let e = rate.emission_ns();
            for (i, start) in allowed_at.iter().enumerate() {
                for (j, end) in allowed_at.iter().enumerate().skip(i) {
                    let n = (j - i + 1) as u64;
                    prop_assert!(n <= u64::from(burst) + (end - start) / e,
                        "{} units in {} ns (burst {}, emission {})", n, end - start, burst, e);
                }
            }
        }
    }
}
