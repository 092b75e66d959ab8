//! Counters, latency histograms and the traffic time series, keyed by bounded labels. The same
//! shape serves as a worker's pending delta, as a worker's published totals, and as the merge of all
//! workers at read time.

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::Histogram;

use super::record::{Label, Outcome, UpstreamFailure};

pub(crate) type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// Traffic time-series resolution and depth (10 s buckets, 15 minutes).
pub const SERIES_BUCKET_MS: u64 = 10_000;
pub const SERIES_BUCKETS: u64 = 90;

/// Latencies above this (µs) are recorded as this: long SSE streams must not widen the histograms.
const LATENCY_MAX_US: u64 = 600_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey {
    pub api: Label,
    /// Folded: a known MCP method or `other`.
    pub method: Label,
    /// Bounded per worker; `None` when the method has no target.
    pub target: Option<Label>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub struct Latency {
    pub hist: Histogram<u64>,
    pub sum_us: u64,
}

impl Default for Latency {
    fn default() -> Self {
        // Two significant digits over 1 µs..10 min: ~22 KB per (api, method), exact enough for
        // p99 and for fixed Prometheus buckets.
        #[allow(clippy::expect_used)]
        let hist = Histogram::new_with_bounds(1, LATENCY_MAX_US, 2)
            .expect("constant histogram bounds are valid");
        Self { hist, sum_us: 0 }
    }
}

impl Latency {
    pub fn record(&mut self, us: u64) {
        let us = us.clamp(1, LATENCY_MAX_US);
        self.hist.saturating_record(us);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn absorb(&mut self, other: &Latency) {
        // Same bounds everywhere, so `add` only fails on impossible shapes; count what fits.
        if self.hist.add(&other.hist).is_err() {
            for v in other.hist.iter_recorded() {
                self.hist
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesPoint {
    pub requests: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Tallies {
    pub requests: Map<RequestKey, u64>,
    /// `(api, code)`; `None` is the `other` bucket for codes past the per-api cap.
    pub jsonrpc_errors: Map<(Label, Option<i64>), u64>,
    /// `(api, rule)`; `None` is the implicit deny.
    pub acl_denials: Map<(Label, Option<Label>), u64>,
    pub upstream_errors: Map<(Label, UpstreamFailure), u64>,
    /// `(api, folded method)`, only for exchanges that wait for an answer.
    pub latency: Map<(Label, Label), Latency>,
    /// Per api, bucket index (`time_ms / SERIES_BUCKET_MS`) → counts.
    pub series: Map<Label, BTreeMap<u64, SeriesPoint>>,
}

impl Tallies {
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Adds `delta` into `self` and empties `delta`, keeping the delta's histogram allocations.
    pub fn absorb_and_clear(&mut self, delta: &mut Tallies) {
        for (k, n) in delta.requests.drain() {
            *self.requests.entry(k).or_default() += n;
        }
        for (k, n) in delta.jsonrpc_errors.drain() {
            *self.jsonrpc_errors.entry(k).or_default() += n;
        }
        for (k, n) in delta.acl_denials.drain() {
            *self.acl_denials.entry(k).or_default() += n;
        }
        for (k, n) in delta.upstream_errors.drain() {
            *self.upstream_errors.entry(k).or_default() += n;
        }
        for (k, lat) in delta.latency.iter_mut() {
            if lat.hist.is_empty() {
                continue;
            }
            self.latency.entry(k.clone()).or_default().absorb(lat);
            lat.hist.reset();
            lat.sum_us = 0;
        }
        for (api, points) in delta.series.drain() {
            let mine = self.series.entry(api).or_default();
            for (bucket, p) in points {
                let m = mine.entry(bucket).or_default();
                m.requests += p.requests;
                m.errors += p.errors;
            }
            // Keep only the window the summary shows.
            if let Some(&newest) = mine.keys().next_back() {
                let oldest_kept = newest.saturating_sub(SERIES_BUCKETS);
                while mine
                    .first_key_value()
                    .is_some_and(|(b, _)| *b < oldest_kept)
                {
                    mine.pop_first();
                }
            }
        }
    }

    /// Adds `other` into `self` without touching it (read-time merge of workers).
    pub fn merge(&mut self, other: &Tallies) {
        for (k, n) in &other.requests {
            *self.requests.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &other.jsonrpc_errors {
            *self.jsonrpc_errors.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &other.acl_denials {
            *self.acl_denials.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &other.upstream_errors {
            *self.upstream_errors.entry(k.clone()).or_default() += n;
        }
        for (k, lat) in &other.latency {
            self.latency.entry(k.clone()).or_default().absorb(lat);
        }
        for (api, points) in &other.series {
            let mine = self.series.entry(api.clone()).or_default();
            for (bucket, p) in points {
                let m = mine.entry(*bucket).or_default();
                m.requests += p.requests;
                m.errors += p.errors;
            }
        }
    }
}
