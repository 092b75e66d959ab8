//! Quotas: `n` units per calendar period (hour, day, month) in UTC, the count starting over at
//! the period's first instant (00:00:00 UTC for a day, the 1st at 00:00 UTC for a month). A key's
//! state is one `u64`: the period's number in its high 32 bits, the count in the low 32, so the
//! node-wide store updates it with one compare-and-swap like a GCRA cell, and a value from an
//! earlier period simply reads as a count of zero.
//!
//! Every function takes the wall clock (`now_ms`, Unix milliseconds) explicitly: tests inject it.

use super::LimitError;

const MS_PER_HOUR: u64 = 3_600_000;
const MS_PER_DAY: u64 = 86_400_000;

/// The calendar period a quota counts over, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "hour" | "h" => Some(Period::Hour),
            "day" | "d" => Some(Period::Day),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The period containing `now_ms`.
    pub fn window(self, now_ms: u64) -> Window {
        match self {
            Period::Hour => fixed(now_ms, MS_PER_HOUR),
            Period::Day => fixed(now_ms, MS_PER_DAY),
            Period::Month => {
                let days = (now_ms / MS_PER_DAY) as i64;
                let (y, m, _) = civil_from_days(days);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let start = days_from_civil(y, m, 1).max(0) as u64 * MS_PER_DAY;
                let end = days_from_civil(ny, nm, 1).max(0) as u64 * MS_PER_DAY;
                let months = (y - 1970).max(0) as u64 * 12 + u64::from(m - 1);
                Window {
                    id: clamp_id(months),
                    start_ms: start,
                    end_ms: end,
                }
            }
        }
    }
}

fn fixed(now_ms: u64, len: u64) -> Window {
    let n = now_ms / len;
    Window {
        id: clamp_id(n),
        start_ms: n * len,
        end_ms: (n + 1) * len,
    }
}

/// Period numbers stay below `u32::MAX`, which the store reserves (an evicted cell).
fn clamp_id(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX - 1).min(u32::MAX - 1)
}

/// One period: its number (hours, days or months since 1970-01-01 UTC) and its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub id: u32,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// A quota: `limit` units per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: u32,
    period: Period,
}

/// What one decision says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    pub remaining: u32,
    /// Refused: until the next period. 0 when allowed.
    pub retry_after_ms: u64,
    /// Until the next period.
    pub reset_ms: u64,
}

impl Quota {
    pub fn new(limit: u32, period: Period) -> Result<Quota, LimitError> {
        if limit == 0 {
            return Err(LimitError::new("quota", "the count must be at least 1"));
        }
        Ok(Quota { limit, period })
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn period(&self) -> Period {
        self.period
    }

    /// Decides `cost` units at `now_ms` against the stored `value` (0 for a key never seen).
    /// Returns the value to store (`None`: refused) and the outcome.
    pub fn decide(&self, value: u64, now_ms: u64, cost: u32) -> (Option<u64>, Outcome) {
        let window = self.period.window(now_ms);
        let count = count_in(value, window.id);
        let reset_ms = window.end_ms.saturating_sub(now_ms);
        let total = u64::from(count) + u64::from(cost);
        if total <= u64::from(self.limit) {
            let stored = (u64::from(window.id) << 32) | total;
            (
                Some(stored),
                Outcome {
                    allowed: true,
                    remaining: self.limit - total as u32,
                    retry_after_ms: 0,
                    reset_ms,
                },
            )
        } else {
            (
                None,
                Outcome {
                    allowed: false,
                    remaining: self.limit.saturating_sub(count),
                    retry_after_ms: reset_ms.max(1),
                    reset_ms,
                },
            )
        }
    }

    /// Gives back `cost` units taken in the period `value` belongs to (see `Rate::refund`).
    pub fn refund(value: u64, cost: u32) -> u64 {
        let period = value >> 32;
        let count = (value & 0xffff_ffff).saturating_sub(u64::from(cost));
        (period << 32) | count
    }

    /// Values below this are from an earlier period (a count of zero now): forgetting them
    /// loses nothing.
    pub fn idle_below(&self, now_ms: u64) -> u64 {
        u64::from(self.period.window(now_ms).id) << 32
    }
}

/// The count a stored value holds for period `id` (0 when it is another period's).
fn count_in(value: u64, id: u32) -> u32 {
    if (value >> 32) == u64::from(id) {
        (value & 0xffff_ffff) as u32
    } else {
        0
    }
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01 (Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2024-02-29T23:59:59.999Z and the instant after it.
    const LEAP_END: u64 = 1_709_251_199_999;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2024, 3, 1), 19_783);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn month_windows_follow_the_calendar() {
        let feb = Period::Month.window(LEAP_END);
        let mar = Period::Month.window(LEAP_END + 1);
        assert_eq!(feb.end_ms, LEAP_END + 1);
        assert_eq!(mar.start_ms, LEAP_END + 1);
        assert_eq!(mar.id, feb.id + 1);
        assert_eq!(feb.end_ms - feb.start_ms, 29 * MS_PER_DAY);
        // December rolls into January of the next year.
        let dec = Period::Month.window(days_from_civil(2025, 12, 31) as u64 * MS_PER_DAY);
        assert_eq!(dec.end_ms, days_from_civil(2026, 1, 1) as u64 * MS_PER_DAY);
    }

    /// The quota rolls over at the period boundary, with the clock injected.
    #[test]
    fn quota_rolls_over_at_midnight_utc() {
        let quota = Quota::new(3, Period::Day).unwrap();
        let before = LEAP_END - 10_000;
        let mut value = 0;
        for remaining in [2, 1, 0] {
            let (next, out) = quota.decide(value, before, 1);
            assert!(out.allowed);
            assert_eq!(out.remaining, remaining);
            value = next.unwrap();
        }
        let (next, out) = quota.decide(value, LEAP_END, 1);
        assert!(next.is_none() && !out.allowed);
        assert_eq!(out.retry_after_ms, 1);
        // First millisecond of the next day: the count starts over.
        let (next, out) = quota.decide(value, LEAP_END + 1, 1);
        assert!(out.allowed && out.remaining == 2);
        assert_eq!(out.reset_ms, MS_PER_DAY);
        assert!(next.unwrap() >= quota.idle_below(LEAP_END + 1));
        assert!(value < quota.idle_below(LEAP_END + 1));
    }

    #[test]
    fn monthly_quota_rolls_over_on_the_first() {
        let quota = Quota::new(1, Period::Month).unwrap();
        let (value, _) = quota.decide(0, LEAP_END - MS_PER_DAY * 20, 1);
        let value = value.unwrap();
        assert!(!quota.decide(value, LEAP_END, 1).1.allowed);
        assert!(quota.decide(value, LEAP_END + 1, 1).1.allowed);
    }

    #[test]
    fn refund_gives_units_back_in_the_same_period() {
        let quota = Quota::new(2, Period::Hour).unwrap();
        let (v, _) = quota.decide(0, 0, 2);
        let v = v.unwrap();
        assert!(!quota.decide(v, 0, 1).1.allowed);
        assert!(quota.decide(Quota::refund(v, 1), 0, 1).1.allowed);
    }

    proptest! {
        #[test]
        fn days_round_trip(z in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(z);
            prop_assert_eq!(days_from_civil(y, m, d), z);
        }

        /// Every instant lies in its window, and the window after it starts where it ends.
        #[test]
        fn windows_tile_time(now in 0u64..4_102_444_800_000, p in 0usize..3) {
            let period = [Period::Hour, Period::Day, Period::Month][p];
            let w = period.window(now);
            prop_assert!(w.start_ms <= now && now < w.end_ms);
            let next = period.window(w.end_ms);
            prop_assert_eq!(next.start_ms, w.end_ms);
            prop_assert_eq!(next.id, w.id + 1);
        }

        /// Never more than `limit` allowed in one period, whatever the costs.
        #[test]
        fn never_more_than_the_limit(limit in 1u32..100, costs in proptest::collection::vec(1u32..5, 1..100)) {
            let quota = Quota::new(limit, Period::Day).unwrap();
            let mut value = 0;
            let mut used = 0u32;
            for cost in costs {
                if let (Some(v), out) = quota.decide(value, 5, cost) {
                    prop_assert!(out.allowed);
                    value = v;
                    used += cost;
                }
            }
            prop_assert!(used <= limit);
        }
    }
}
