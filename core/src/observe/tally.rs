//! Counters, latency histograms and the traffic time series, keyed by bounded labels. The same
//! shape serves as a worker's pending delta, as a worker's published totals, and as the merge of all
//! workers at read time.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use hdrhistogram::Histogram;

use super::record::{Label, Outcome, UpstreamFailure};

pub(crate) type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// Traffic time-series resolution and depth (10 s buckets, 15 minutes).
pub const SERIES_BUCKET_MS: u64 = 10_000;
pub const SERIES_BUCKETS: u64 = 90;

/// Latencies above this (µs) are recorded as this: long SSE streams must not widen the histograms.
const LATENCY_MAX_US: u64 = 600_000_000;

/// A label by identity: the address of its text. A worker's delta is keyed by these, so
/// the per-exchange map updates hash and copy a word instead of hashing text or touching reference
/// counts (each clone and drop of an `Arc` is an atomic). Sound because the worker keeps every
/// label its delta has a key for alive until the delta is absorbed ([`DeltaLabels`]), so no
/// address is reused while a key holds it. Two labels with the same text at different addresses are
/// two keys here and merge when the delta is absorbed (by text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LabelAddr(usize);

impl LabelAddr {
    pub fn of(label: &Label) -> Self {
        Self(label.as_ptr() as usize)
    }
}

/// The labels a worker's delta has keys for, by address: keeps them alive and turns the keys back
/// into labels when the delta is absorbed.
#[derive(Debug, Default)]
pub struct DeltaLabels(Map<LabelAddr, Label>);

impl DeltaLabels {
    /// `label`'s key, keeping it alive (a clone only the first time per delta).
    pub fn keep(&mut self, label: &Label) -> LabelAddr {
        let addr = LabelAddr::of(label);
        self.0.entry(addr).or_insert_with(|| label.clone());
        addr
    }

    fn get(&self, addr: LabelAddr) -> Option<Label> {
        self.0.get(&addr).cloned()
    }

    pub fn clear(&mut self) {
        self.0.clear();
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
    /// `(api, rule, dry_run)`; `None` is the implicit deny; `dry_run`: a would-be denial the
    /// ACL's dry-run let through.
    pub acl_denials: Map<(L, Option<L>, bool), u64>,
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

    /// Adds `delta` into `self` and empties `delta`; `labels` are the delta's keys (then cleared).
    pub fn absorb_and_clear(&mut self, delta: &mut Tallies<LabelAddr>, labels: &mut DeltaLabels) {
        // Every key was kept when it was made; one that was not would be a bug, and its count is
        // dropped rather than filed under the wrong label.
        let label = |a: LabelAddr| labels.get(a);
        for (k, n) in delta.requests.drain() {
            let target = match k.target.map(label) {
                Some(None) => continue,
                t => t.flatten(),
            };
            let (Some(api), Some(method)) = (label(k.api), label(k.method)) else {
                continue;
            };
            let k = RequestKey {
                api,
                method,
                target,
                outcome: k.outcome,
            };
            *self.requests.entry(k).or_default() += n;
        }
        for ((api, code), n) in delta.jsonrpc_errors.drain() {
            if let Some(api) = label(api) {
                *self.jsonrpc_errors.entry((api, code)).or_default() += n;
            }
        }
        for ((api, rule, dry_run), n) in delta.acl_denials.drain() {
            let rule = match rule.map(label) {
                Some(None) => continue,
                r => r.flatten(),
            };
            if let Some(api) = label(api) {
                *self.acl_denials.entry((api, rule, dry_run)).or_default() += n;
            }
        }
        for ((api, kind), n) in delta.upstream_errors.drain() {
            if let Some(api) = label(api) {
                *self.upstream_errors.entry((api, kind)).or_default() += n;
            }
        }
        // Drained like the rest, so a delta never outgrows one flush's records.
        for ((api, method), lat) in delta.latency.drain() {
            if let (Some(api), Some(method)) = (label(api), label(method)) {
                self.latency.entry((api, method)).or_default().absorb(&lat);
            }
        }
        for (api, points) in delta.series.drain() {
            let Some(api) = label(api) else { continue };
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
        labels.clear();
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
