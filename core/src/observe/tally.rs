//! Counters, latency histograms and the traffic time series, keyed by bounded labels. The same
//! shape serves as a worker's pending delta, as a worker's published totals, and as the merge of all
//! workers at read time.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hdrhistogram::Histogram;

use super::record::{Label, Outcome, UpstreamFailure};

pub(crate) type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// Traffic time-series resolution and depth (10 s buckets, 15 minutes).
pub const SERIES_BUCKET_MS: u64 = 10_000;
pub const SERIES_BUCKETS: u64 = 90;

/// Latencies above this (µs) are recorded as this: long SSE streams must not widen the histograms.
const LATENCY_MAX_US: u64 = 600_000_000;

/// A label compared and hashed by identity: a worker's delta is keyed by the interned `Arc`s it
/// hands out, so the per-exchange map updates hash a pointer instead of a string. Two distinct
/// `Arc`s with the same text are two keys here and merge when the delta is absorbed (by text).
#[derive(Debug, Clone)]
pub struct ByPtr(pub Label);

impl PartialEq for ByPtr {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ByPtr {}

impl Hash for ByPtr {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (Arc::as_ptr(&self.0) as *const u8 as usize).hash(h);
    }
}

/// What a tally can be keyed by: text (published, merged) or identity (a worker's delta).
pub trait LabelKey: Clone + Eq + Hash {
    fn into_label(self) -> Label;
}

impl LabelKey for Label {
    fn into_label(self) -> Label {
        self
    }
}

impl LabelKey for ByPtr {
    fn into_label(self) -> Label {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey<L = Label> {
    pub api: L,
    /// Folded: a known MCP method or `other`.
    pub method: L,
    /// Bounded per worker; `None` when the method has no target.
    pub target: Option<L>,
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

#[derive(Debug, Clone)]
pub struct Tallies<L = Label> {
    pub requests: Map<RequestKey<L>, u64>,
    /// `(api, code)`; `None` is the `other` bucket for codes past the per-api cap.
    pub jsonrpc_errors: Map<(L, Option<i64>), u64>,
    /// `(api, rule)`; `None` is the implicit deny.
    pub acl_denials: Map<(L, Option<L>), u64>,
    pub upstream_errors: Map<(L, UpstreamFailure), u64>,
    /// `(api, folded method)`, only for exchanges that wait for an answer.
    pub latency: Map<(L, L), Latency>,
    /// Per api, bucket index (`time_ms / SERIES_BUCKET_MS`) → counts.
    pub series: Map<L, BTreeMap<u64, SeriesPoint>>,
}

impl<L> Default for Tallies<L> {
    fn default() -> Self {
        Self {
            requests: Map::default(),
            jsonrpc_errors: Map::default(),
            acl_denials: Map::default(),
            upstream_errors: Map::default(),
            latency: Map::default(),
            series: Map::default(),
        }
    }
}

impl Tallies {
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Adds `delta` into `self` and empties `delta`.
    pub fn absorb_and_clear<L: LabelKey>(&mut self, delta: &mut Tallies<L>) {
        for (k, n) in delta.requests.drain() {
            let k = RequestKey {
                api: k.api.into_label(),
                method: k.method.into_label(),
                target: k.target.map(LabelKey::into_label),
                outcome: k.outcome,
            };
            *self.requests.entry(k).or_default() += n;
        }
        for ((api, code), n) in delta.jsonrpc_errors.drain() {
            *self
                .jsonrpc_errors
                .entry((api.into_label(), code))
                .or_default() += n;
        }
        for ((api, rule), n) in delta.acl_denials.drain() {
            let key = (api.into_label(), rule.map(LabelKey::into_label));
            *self.acl_denials.entry(key).or_default() += n;
        }
        for ((api, kind), n) in delta.upstream_errors.drain() {
            *self
                .upstream_errors
                .entry((api.into_label(), kind))
                .or_default() += n;
        }
        // Drained like the rest, so a delta never outgrows one flush's records.
        for ((api, method), lat) in delta.latency.drain() {
            let key = (api.into_label(), method.into_label());
            self.latency.entry(key).or_default().absorb(&lat);
        }
        for (api, points) in delta.series.drain() {
            let mine = self.series.entry(api.into_label()).or_default();
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
